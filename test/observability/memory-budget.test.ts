// The start-up check of the heap against what mqtt.maxInFlightBytes lets a worker hold.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { memoryBudget } from '../../src/observability/memory-budget.ts';

const MiB = 2 ** 20;

test('the heap a config needs: a baseline, the topics kept at their bound, and six copies of the bytes in flight, per connection', () => {
  assert.deepEqual(memoryBudget(16 * MiB, 2, 512 * MiB), { neededMiB: 64 + 20 + 6 * 16 * 2, heapLimitMiB: 512, ok: true });
  assert.deepEqual(memoryBudget(16 * MiB, 2, 200 * MiB), { neededMiB: 276, heapLimitMiB: 200, ok: false });
  assert.equal(memoryBudget(64 * MiB, 1, 256 * MiB).ok, false, '64 + 20 + 384 MiB needed');
  assert.equal(memoryBudget(16 * MiB, 1).heapLimitMiB > 0, true, "V8's own limit by default");
});
