/** `lmf webui`: the board on 127.0.0.1 by default; beyond loopback it requires an access token (printed in its address). */
import { Command } from 'commander';
import { port } from './parse.js';
import { randomBytes } from 'node:crypto';

export function webuiCommand(): Command {
  return new Command('webui')
    .description(
      'the LMFactory Board: configure, launch and watch training, then evaluate, chat and export, in the browser',
    )
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'port', port, 7860)
    .option('--model-dir <dirs>', 'more folders (comma-separated) whose models the board may read and write', '')
    .option('--data-dir <dirs>', 'more folders (comma-separated) whose datasets the board may read', '')
    .option('--token <token>', 'access token (default: none on loopback, a random one otherwise)')
    .option('--board-dir <dir>', 'where saved arguments and job folders are kept', 'lmfactory_board')
    .action(
      async (o: {
        host: string;
        port: number;
        modelDir: string;
        dataDir: string;
        token?: string;
        boardDir: string;
      }) => {
        const { buildWebui } = await import('../webui/server.js');
        const loopback = ['127.0.0.1', 'localhost', '::1'].includes(o.host);
        const token = o.token ?? (loopback ? undefined : randomBytes(16).toString('hex'));
        const roots = [o.modelDir, o.dataDir]
          .flatMap((s) => s.split(','))
          .map((s) => s.trim())
          .filter(Boolean);
        // the port is needed for the host check before listening; 0 asks the OS, then the hook learns the real one
        const options = { host: o.host, port: o.port, roots, token, boardDir: o.boardDir };
        const app = await buildWebui(options);
        await app.listen({ host: o.host, port: o.port });
        const address = app.server.address();
        if (address && typeof address === 'object') options.port = address.port;
        const shown = o.host === '::1' ? `[::1]` : o.host;
        process.stdout.write(`LMFactory Board on http://${shown}:${options.port}/${token ? `?token=${token}` : ''}\n`);
        const stop = () => void app.close();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      },
    );
}
