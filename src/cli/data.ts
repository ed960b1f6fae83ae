/** `lmf data preview` and `lmf data check`: what the trainer will see, before it trains. */
import { Command } from 'commander';
import { loadConfigFrom, settingsHelp } from './config.js';

async function prepared(args: string[]) {
  const [c, { prepareData }] = await Promise.all([loadConfigFrom(args), import('../data/pipeline.js')]);
  return prepareData(c);
}

export function dataCommand(): Command {
  const data = new Command('data').description('inspect datasets as the trainer will see them');
  data
    .command('preview')
    .description('print rendered examples with the trained tokens marked, and their token counts')
    .argument('[settings...]', settingsHelp('training YAML (model_name_or_path, dataset, template, cutoff_len …)'))
    .allowUnknownOption()
    .option('--n <n>', 'examples to show', (v) => Number(v), 3)
    .action(async (args: string[], o: { n: number }) => {
      const d = await prepared(args);
      const { markTrained, previewExamples } = await import('../data/report.js');
      const color = process.stdout.isTTY === true;
      process.stdout.write(`template: ${d.template.name}; trained tokens are ${color ? 'green' : 'between ⟦ and ⟧'}\n`);
      for (const { label, example } of previewExamples(d.train, o.n)) {
        const trained = example.labels.filter((l) => l >= 0).length;
        process.stdout.write(
          `\n── ${label}: ${example.ids.length} tokens, ${trained} trained ──\n${markTrained(d.tokenizer, example, color)}\n`,
        );
      }
    });
  data
    .command('check')
    .description('validate every row; print a summary and each problem as file:row: what is wrong')
    .argument('[settings...]', settingsHelp('training YAML'))
    .allowUnknownOption()
    .action(async (args: string[]) => {
      const d = await prepared(args);
      const { checkSummary } = await import('../data/report.js');
      process.stdout.write(`${checkSummary(d).join('\n')}\n`);
      for (const p of d.problems) process.stdout.write(`${p.file}:${p.row}: ${p.message}\n`);
      process.exitCode = d.problems.length ? 1 : 0;
    });
  return data;
}
