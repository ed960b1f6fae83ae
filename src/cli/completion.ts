/**
 * `lmf completion bash|zsh`: a completion script generated from the command definitions themselves (commands,
 * subcommands, options) and the config schema (key=value overrides after a config file), so it cannot drift.
 * zsh uses the same function through bashcompinit.
 */
import { Command } from 'commander';

interface Entry {
  /** "train", or "data check" for a subcommand */
  path: string;
  options: string[];
  /** takes a YAML config and key=value overrides */
  config: boolean;
}

function entries(program: Command): Entry[] {
  const out: Entry[] = [];
  const walk = (c: Command, prefix: string) => {
    for (const sub of c.commands) {
      const p = prefix ? `${prefix} ${sub.name()}` : sub.name();
      const options = sub.options.map((o) => o.long).filter((l): l is string => !!l);
      out.push({
        path: p,
        options: [...options, '--help'],
        config: sub.registeredArguments.some((a) => a.name() === 'settings'),
      });
      walk(sub, p);
    }
  };
  walk(program, '');
  return out;
}

function bashScript(program: Command, configKeys: string[]): string {
  const all = entries(program);
  const top = program.commands.map((c) => c.name()).join(' ');
  const cases = all
    .map((e) => {
      const subs = all
        .filter((s) => s.path.startsWith(`${e.path} `) && !s.path.slice(e.path.length + 1).includes(' '))
        .map((s) => s.path.split(' ').pop());
      return `    "${e.path}") subs="${subs.join(' ')}"; opts="${e.options.join(' ')}"; config=${e.config ? 1 : 0} ;;`;
    })
    .join('\n');
  return `# lmf completion for bash (and zsh through bashcompinit): eval "$(lmf completion bash)"
_lmf_completion() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" path="" subs="" opts="" config=0 i
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "${top} --help --version" -- "$cur"))
    return
  fi
  path="\${COMP_WORDS[1]}"
  if [ "$COMP_CWORD" -gt 2 ]; then
    case "$path \${COMP_WORDS[2]}" in
${all
  .filter((e) => e.path.includes(' '))
  .map((e) => `      "${e.path}") path="${e.path}" ;;`)
  .join('\n')}
    esac
  fi
  case "$path" in
${cases}
  esac
  if [[ "$cur" == -* ]]; then
    [ "$config" = 1 ] && opts="$opts ${configKeys.map((k) => `--${k}`).join(' ')}"
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  elif [ -n "$subs" ] && [ "$COMP_CWORD" -eq 2 ]; then
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
  elif [ "$config" = 1 ] && [[ "$cur" != *=* ]]; then
    local n=0
    for ((i = 2; i < COMP_CWORD; i++)); do [[ "\${COMP_WORDS[i]}" != -* ]] && n=$((n + 1)); done
    if [ "$n" -ge 1 ] && [[ "$path" != *" "* || "$n" -ge 2 ]]; then
      COMPREPLY=($(compgen -W "${configKeys.join(' ')}" -S = -- "$cur"))
      compopt -o nospace 2>/dev/null
    else
      COMPREPLY=($(compgen -f -- "$cur"))
    fi
  fi
}
complete -o default -F _lmf_completion lmf
`;
}

export function completionCommand(program: () => Command): Command {
  return new Command('completion')
    .description('print a shell completion script: eval "$(lmf completion bash)" in ~/.bashrc, or zsh in ~/.zshrc')
    .argument('<shell>', 'bash or zsh')
    .action(async (shell: string) => {
      if (shell !== 'bash' && shell !== 'zsh') {
        const { LmfError } = await import('../errors.js');
        throw new LmfError('bad_option', `no completion for shell "${shell}"`, {
          hint: 'lmf completion bash, or lmf completion zsh',
        });
      }
      const { configKeys } = await import('../config/schema.js');
      const script = bashScript(program(), configKeys);
      process.stdout.write(shell === 'zsh' ? `autoload -U +X bashcompinit && bashcompinit\n${script}` : script);
    });
}
