/**
 * `lmf api CONFIG`: the OpenAI-compatible server on loopback by default. As LLaMA-Factory, API_HOST,
 * API_PORT, API_KEY and API_MODEL_NAME set the address, the required Bearer key and the model's id.
 */
import { Command } from 'commander';
import { nonNegativeInt, port } from './parse.js';
import path from 'node:path';
import { loadConfigFrom, settingsHelp } from './config.js';

export function apiCommand(): Command {
  return new Command('api')
    .description('serve a model (and adapters) over an OpenAI-compatible HTTP API')
    .argument(
      '[settings...]',
      settingsHelp('YAML with model_name_or_path, adapter_name_or_path, template, generation keys'),
    )
    .allowUnknownOption()
    .option('--host <host>', 'address to listen on (API_HOST)', process.env.API_HOST ?? '127.0.0.1')
    .option('--port <n>', 'port; 0 picks a free one (API_PORT)', port, Number(process.env.API_PORT ?? 8000))
    .option('--max-active <n>', 'requests generated together', nonNegativeInt, 8)
    .option('--max-queued <n>', 'requests allowed to wait; more get 429', nonNegativeInt, 64)
    .action(async (args: string[], o: { host: string; port: number; maxActive: number; maxQueued: number }) => {
      const c = await loadConfigFrom(args);
      const [{ buildApiServer }, { configSettings, loadFromConfig }] = await Promise.all([
        import('../api/server.js'),
        import('../infer/load.js'),
      ]);
      const m = loadFromConfig(c);
      const apiKey = process.env.API_KEY || undefined;
      const app = buildApiServer(m, {
        apiKey,
        modelName: process.env.API_MODEL_NAME ?? path.basename(path.resolve(c.model_name_or_path)),
        settings: configSettings(c, m),
        defaultSystem: c.default_system,
        maxActive: Math.max(1, o.maxActive),
        maxQueued: o.maxQueued,
      });
      const address = await app.listen({ host: o.host, port: o.port });
      process.stdout.write(`lmf api listening on ${address}/v1${apiKey ? ' (API key required)' : ''}\n`);
      if (!['127.0.0.1', 'localhost', '::1'].includes(o.host) && !apiKey) {
        process.stderr.write(
          'warning: listening beyond this machine without API_KEY: anyone who can reach it can use the model\n',
        );
      }
      const stop = () => void app.close().then(() => m.dispose());
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
