/**
 * A tiny reverse-mode autodiff over plain numbers, for losses made of a handful of per-sequence values
 * (preference losses): each loss is written once, as its formula, and its gradient comes from the chain rule.
 */
export class Scalar {
  grad = 0;
  private readonly parents: [Scalar, number][];

  constructor(
    readonly value: number,
    parents: [Scalar, number][] = [],
  ) {
    this.parents = parents;
  }

  static of(v: number): Scalar {
    return new Scalar(v);
  }

  add(o: Scalar | number): Scalar {
    const b = typeof o === 'number' ? Scalar.of(o) : o;
    return new Scalar(this.value + b.value, [
      [this, 1],
      [b, 1],
    ]);
  }

  sub(o: Scalar | number): Scalar {
    const b = typeof o === 'number' ? Scalar.of(o) : o;
    return new Scalar(this.value - b.value, [
      [this, 1],
      [b, -1],
    ]);
  }

  mul(o: Scalar | number): Scalar {
    const b = typeof o === 'number' ? Scalar.of(o) : o;
    return new Scalar(this.value * b.value, [
      [this, b.value],
      [b, this.value],
    ]);
  }

  neg(): Scalar {
    return this.mul(-1);
  }

  square(): Scalar {
    return new Scalar(this.value ** 2, [[this, 2 * this.value]]);
  }

  /** log(sigmoid(x)), stable for large |x| */
  logSigmoid(): Scalar {
    const x = this.value;
    const v = x >= 0 ? -Math.log1p(Math.exp(-x)) : x - Math.log1p(Math.exp(x));
    return new Scalar(v, [[this, 1 / (1 + Math.exp(x))]]);
  }

  sigmoid(): Scalar {
    const s = 1 / (1 + Math.exp(-this.value));
    return new Scalar(s, [[this, s * (1 - s)]]);
  }

  /** log(1 - exp(x)) for x < 0 */
  log1mExp(): Scalar {
    const e = Math.exp(this.value);
    return new Scalar(Math.log1p(-e), [[this, -e / (1 - e)]]);
  }

  relu(): Scalar {
    return new Scalar(Math.max(0, this.value), [[this, this.value > 0 ? 1 : 0]]);
  }

  /** Fills .grad of every Scalar this one depends on (d this / d x). */
  backward(): void {
    const order: Scalar[] = [];
    const seen = new Set<Scalar>();
    const visit = (s: Scalar) => {
      if (seen.has(s)) return;
      seen.add(s);
      for (const [p] of s.parents) visit(p);
      order.push(s);
    };
    visit(this);
    this.grad = 1;
    for (let i = order.length - 1; i >= 0; i--)
      for (const [p, local] of order[i].parents) p.grad += local * order[i].grad;
  }
}

export function mean(xs: Scalar[]): Scalar {
  return xs.reduce((a, x) => a.add(x), Scalar.of(0)).mul(1 / xs.length);
}
