"""Shell completion scripts, built from the parser so they never drift from it."""

from __future__ import annotations

from . import build_parser

__all__ = ["script"]

# Options whose values are kernel names, and arguments that are running kernel ids.
_KERNEL_OPTIONS = ("-k", "--kernel")
_ID_COMMANDS = ("exec", "interrupt", "restart", "stop")


def _commands() -> dict[str, list[str]]:
    return {name: sorted(sub.options) for name, sub in build_parser().commands.items()}


def script(shell: str) -> str:
    """The completion script for ``bash`` or ``zsh`` (zsh through bashcompinit).

    Kernel names come from ``runtimelib kernels -q`` and kernel ids from ``runtimelib ps -q``
    when the completion asks, so they are always current; once the line has ``--server URL``
    they are that server's (its token from ``JUPYTER_TOKEN``).
    """
    commands = _commands()
    cases = "\n".join(
        f'        {name}) opts="{" ".join(options)}" ;;' for name, options in commands.items()
    )
    body = f"""# runtimelib completion for {shell}: eval "$(runtimelib completion {shell})"
_runtimelib() {{
    local cur prev command opts i
    local -a where=()
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    command="${{COMP_WORDS[1]}}"
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "{" ".join(commands)} --help --version" -- "$cur"))
        return
    fi
    for ((i = 2; i < COMP_CWORD - 1; i++)); do
        if [ "${{COMP_WORDS[i]}}" = --server ]; then where=(--server "${{COMP_WORDS[i+1]}}"); fi
    done
    case "$prev" in
        {"|".join(_KERNEL_OPTIONS)})
            opts="$(runtimelib kernels -q "${{where[@]}}" 2>/dev/null)"
            COMPREPLY=($(compgen -W "$opts" -- "$cur"))
            return ;;
        --existing)
            COMPREPLY=($(compgen -W "$(runtimelib ps -q "${{where[@]}}" 2>/dev/null)" -- "$cur"))
            return ;;
        --server|--token)
            COMPREPLY=()
            return ;;
    esac
    case "$command" in
{cases}
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    elif [[ " {" ".join(_ID_COMMANDS)} " == *" $command "* ]] &&
        [ "$COMP_CWORD" -eq $((2 + ${{#where[@]}})) ]; then
        COMPREPLY=($(compgen -W "$(runtimelib ps -q "${{where[@]}}" 2>/dev/null)" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}}
"""
    if shell == "zsh":
        body += "autoload -U +X bashcompinit && bashcompinit\n"
    return body + "complete -F _runtimelib runtimelib\n"
