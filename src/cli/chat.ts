/**
 * `lmf chat CONFIG`: a terminal conversation. The answer streams as it is generated; "clear" forgets the
 * history, "exit" (or end of input) quits; Ctrl-C stops an answer, or quits at the prompt.
 */
import { Command } from 'commander';
import { createInterface } from 'node:readline';
import type { Message } from '../data/messages.js';
import { loadConfigFrom, settingsHelp } from './config.js';

export function chatCommand(): Command {
  return new Command('chat')
    .description('chat with a model (and its adapters) in the terminal, as the YAML config says')
    .argument(
      '[settings...]',
      settingsHelp('YAML with model_name_or_path, adapter_name_or_path, template, generation keys'),
    )
    .allowUnknownOption()
    .action(async (args: string[]) => {
      const c = await loadConfigFrom(args);
      const [{ GenerationEngine }, { chatRequest, configSettings, loadFromConfig }] = await Promise.all([
        import('../infer/generate.js'),
        import('../infer/load.js'),
      ]);
      const m = loadFromConfig(c);
      const settings = configSettings(c, m);
      const engine = new GenerationEngine(m.model, m.tokenizer, { maxActive: 1, maxQueued: 0 });
      const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY });
      let answering: AbortController | null = null;
      rl.on('SIGINT', () => (answering ? answering.abort() : rl.close()));
      process.stdout.write('Type a message; "clear" forgets the history, "exit" quits.\n');
      const history: Message[] = [];
      rl.setPrompt('\nUser: ');
      rl.prompt();
      try {
        // lines are read as they come, so piped input works as typed input does
        for await (const raw of rl) {
          const line = raw.trim();
          if (line === 'exit') break;
          if (line === 'clear') {
            history.length = 0;
            process.stdout.write('History has been removed.\n');
          } else if (line) {
            history.push({ role: 'user', content: line });
            process.stdout.write('Assistant: ');
            answering = new AbortController();
            const done = await engine.submit(
              chatRequest(m, history, { system: c.default_system, settings, seed: c.seed }),
              (delta) => process.stdout.write(delta),
              answering.signal,
            );
            answering = null;
            process.stdout.write(done.finishReason === 'cancelled' ? ' [stopped]\n' : '\n');
            history.push({ role: 'assistant', content: done.text });
          }
          rl.prompt();
        }
      } finally {
        rl.close();
        m.dispose();
      }
    });
}
