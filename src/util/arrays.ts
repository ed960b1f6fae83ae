/**
 * Array helpers that hold for any length. `a.push(...b)` and `Math.max(...b)` pass every element as an
 * argument on the stack and throw "Maximum call stack size exceeded" past about 100k elements (a long row's
 * tokens, a big dataset's rows): the lint forbids them, and these loops replace them.
 */

/** Appends every item of `items` to `target`; returns target. */
export function pushAll<T>(target: T[], items: ArrayLike<T>): T[] {
  for (let i = 0; i < items.length; i++) target.push(items[i]);
  return target;
}

/** Math.max(floor, ...values) for any number of values. */
export function maxOf(values: ArrayLike<number>, floor = -Infinity): number {
  let m = floor;
  for (let i = 0; i < values.length; i++) if (values[i] > m) m = values[i];
  return m;
}

/** Math.min(ceiling, ...values) for any number of values. */
export function minOf(values: ArrayLike<number>, ceiling = Infinity): number {
  let m = ceiling;
  for (let i = 0; i < values.length; i++) if (values[i] < m) m = values[i];
  return m;
}
