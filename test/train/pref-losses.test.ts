// Each preference loss against values worked out by hand (the comments give the arithmetic).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ktoLoss, preferenceLoss, rewardLoss, type PrefSettings } from '../../src/tensor/pair-losses.js';
import { Scalar } from '../../src/tensor/scalar.js';
import { preferenceLossOp } from '../../src/tensor/ops/preference-loss.js';
import { backward } from '../../src/tensor/autograd.js';
import { Tensor, withScope } from '../../src/tensor/tensor.js';

const near = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-9, `${what}: ${a} vs ${b}`);
const base: PrefSettings = { loss: 'sigmoid', beta: 0.1, labelSmoothing: 0, simpoGamma: 0.5, ftx: 0 };

test('sigmoid (DPO) and label smoothing', () => {
  // z = (-5 - -6) - (-7 - -6) = 2; loss = -log sigmoid(0.1 * 2) = log(1 + e^-0.2) = 0.598139
  const chosen = Scalar.of(-5),
    rejected = Scalar.of(-7);
  const l = preferenceLoss([{ chosen, rejected, refChosen: -6, refRejected: -6 }], base);
  near(l.value, 0.5981388693815918, 'loss');
  l.backward();
  near(chosen.grad, -0.1 * (1 / (1 + Math.exp(0.2))), 'dL/dchosen = -beta sigmoid(-0.2)');
  near(rejected.grad, -chosen.grad, 'dL/drejected');
  // eps 0.1: -0.9 log sigmoid(0.2) - 0.1 log sigmoid(-0.2) = 0.618139
  near(
    preferenceLoss([{ chosen, rejected, refChosen: -6, refRejected: -6 }], { ...base, labelSmoothing: 0.1 }).value,
    0.6181388693815918,
    'smoothed',
  );
});

test('hinge and ipo', () => {
  // hinge: relu(1 - 0.1 * 2) = 0.8, slope -beta
  const c = Scalar.of(-5);
  const h = preferenceLoss([{ chosen: c, rejected: Scalar.of(-7), refChosen: -6, refRejected: -6 }], {
    ...base,
    loss: 'hinge',
  });
  near(h.value, 0.8, 'hinge');
  h.backward();
  near(c.grad, -0.1, 'hinge slope');
  // ipo, averages: z = (-1 - -1.5) - (-2 - -1.5) = 1, beta 0.25: (1 - 1/(2*0.25))^2 = 1, d/dchosen = 2 (1 - 2) = -2
  const a = Scalar.of(-1);
  const ipo = preferenceLoss([{ chosen: a, rejected: Scalar.of(-2), refChosen: -1.5, refRejected: -1.5 }], {
    ...base,
    loss: 'ipo',
    beta: 0.25,
  });
  near(ipo.value, 1, 'ipo');
  ipo.backward();
  near(a.grad, -2, 'ipo slope');
});

test('orpo and simpo (no reference model)', () => {
  // orpo: log odds = 0.5 - (log(1 - e^-0.5) - log(1 - e^-1)) = 0.974077; loss = 0.5 + 0.1 * log(1 + e^-0.974077)
  near(
    preferenceLoss([{ chosen: Scalar.of(-0.5), rejected: Scalar.of(-1) }], { ...base, loss: 'orpo' }).value,
    0.5320299785237537,
    'orpo',
  );
  // simpo: beta 2, gamma 1: -log sigmoid(2 * ((-1 - -2) - 1/2)) = log(1 + e^-1)
  near(
    preferenceLoss([{ chosen: Scalar.of(-1), rejected: Scalar.of(-2) }], {
      ...base,
      loss: 'simpo',
      beta: 2,
      simpoGamma: 1,
    }).value,
    0.31326168751822286,
    'simpo',
  );
  // pref_ftx adds ftx * (-average log p of the chosen answer): 0.313262 + 0.5 * 1
  near(
    preferenceLoss([{ chosen: Scalar.of(-1), rejected: Scalar.of(-2) }], {
      ...base,
      loss: 'simpo',
      beta: 2,
      simpoGamma: 1,
      ftx: 0.5,
    }).value,
    0.81326168751822286,
    'ftx',
  );
});

test('reward model and KTO', () => {
  // rm: -log sigmoid(1.5 - 0.5) = log(1 + e^-1)
  near(rewardLoss([{ chosen: Scalar.of(1.5), rejected: Scalar.of(0.5) }]).value, 0.31326168751822286, 'rm');
  // kto, kl 0.1, beta 1: desirable 1 - sigmoid(0.3 - 0.1), undesirable 1 - sigmoid(0.1 - -0.2); mean
  const k = ktoLoss(
    [
      { logratio: Scalar.of(0.3), desirable: true },
      { logratio: Scalar.of(-0.2), desirable: false },
    ],
    0.1,
    { beta: 1, desirableWeight: 1, undesirableWeight: 1 },
  );
  near(k.value, 0.4378617429379315, 'kto');
  // a negative KL estimate is clamped at 0
  near(
    ktoLoss([{ logratio: Scalar.of(0), desirable: true }], -3, { beta: 1, desirableWeight: 2, undesirableWeight: 1 })
      .value,
    1,
    'clamped kl',
  );
});

test('the preference-loss op spreads each sequence gradient over its tokens (finite differences, every loss)', () => {
  const T = 5,
    P = 2;
  const targets = Int32Array.from([1, 1, -100, 1, 1, -100, 1, 1, 1, -100, 1, 1, 1, 1, 1, -100, -100, 1, 1, -100]);
  for (const loss of ['sigmoid', 'hinge', 'ipo', 'orpo', 'simpo'] as const) {
    withScope(() => {
      const values = Array.from({ length: 2 * P * T }, (_, i) => -0.2 - 0.1 * ((i * 7) % 5));
      const logp = Tensor.from(values, [2 * P * T], 'f32');
      logp.requiresGrad = true;
      const batch = {
        targets,
        pairs: P,
        seq: T,
        refChosen: Float64Array.of(-1, -1.2),
        refRejected: Float64Array.of(-1.1, -0.9),
      };
      const s = { loss, beta: 0.3, labelSmoothing: 0.1, simpoGamma: 0.2, ftx: 0.2 };
      backward(preferenceLossOp(logp, batch, s).loss);
      for (const i of [0, 3, 6, 12, 18]) {
        const at = (e: number) => {
          const v = values.slice();
          v[i] += e;
          return preferenceLossOp(Tensor.from(v, [2 * P * T], 'f32'), batch, s).loss.data[0];
        };
        const numeric = (at(1e-3) - at(-1e-3)) / 2e-3;
        assert.ok(
          Math.abs(numeric - logp.grad!.data[i]) < 2e-3,
          `${loss} token ${i}: ${numeric} vs ${logp.grad!.data[i]}`,
        );
      }
    });
  }
});
