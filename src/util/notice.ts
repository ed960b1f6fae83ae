/** A line for the user that is neither an error nor progress: something to know (stderr, never stdout's data). */
export function notice(line: string): void {
  process.stderr.write(`notice: ${line}\n`);
}
