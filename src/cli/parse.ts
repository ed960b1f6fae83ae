/** Parsers for numeric command-line options: a bad value stops with commander's usage message. */
import { InvalidArgumentError } from 'commander';

function integer(value: string, min: number, max: number, expected: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(expected);
  return n;
}

export const positiveInt = (v: string) => integer(v, 1, Number.MAX_SAFE_INTEGER, 'expected a positive integer');
export const nonNegativeInt = (v: string) => integer(v, 0, Number.MAX_SAFE_INTEGER, 'expected a non-negative integer');
export const port = (v: string) => integer(v, 0, 65535, 'expected a port number (0 picks a free one)');

export function positiveNumber(value: string): number {
  const n = Number(value);
  if (!(n > 0)) throw new InvalidArgumentError('expected a positive number');
  return n;
}

export function nonNegativeNumber(value: string): number {
  const n = Number(value);
  if (!(n >= 0)) throw new InvalidArgumentError('expected a number >= 0');
  return n;
}
