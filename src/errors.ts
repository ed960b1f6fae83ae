/** One error type for everything a user can get wrong: it names the file, row or key and says what to do. */
export interface LmfErrorContext {
  file?: string;
  row?: number;
  key?: string;
  tensor?: string;
  hint?: string;
}

export class LmfError extends Error {
  readonly code: string;
  readonly context: LmfErrorContext;

  constructor(code: string, message: string, context: LmfErrorContext = {}) {
    super(message);
    this.name = 'LmfError';
    this.code = code;
    this.context = context;
  }

  /** Two lines for the terminal: where and what, then what to do. */
  format(): string {
    const where = [this.context.file, this.context.row !== undefined ? `row ${this.context.row}` : undefined,
      this.context.key !== undefined ? `key ${this.context.key}` : undefined,
      this.context.tensor !== undefined ? `tensor ${this.context.tensor}` : undefined]
      .filter((s) => s !== undefined).join(': ');
    const head = `error [${this.code}]${where ? ` ${where}:` : ''} ${this.message}`;
    return this.context.hint ? `${head}\n  hint: ${this.context.hint}` : head;
  }
}
