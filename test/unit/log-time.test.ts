import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { isoTimeOncePerMs } from '../../dist/log.js';

describe('log time (issue 19): isoTime made once per millisecond', () => {
  it('writes the bytes pino isoTime writes, for every millisecond', (t) => {
    let now = Date.UTC(2026, 11, 6, 23, 59, 59, 998);
    t.mock.method(Date, 'now', () => now);
    const time = isoTimeOncePerMs();
    for (let i = 0; i < 5; i++, now += 1) {
      assert.equal(time(), pino.stdTimeFunctions.isoTime());
      assert.equal(time(), pino.stdTimeFunctions.isoTime(), 'asked twice in the same millisecond');
    }
    assert.equal(time(), ',"time":"2026-12-07T00:00:00.003Z"');
  });

  it('moves with the clock, backwards too', (t) => {
    let now = 1_000_000;
    t.mock.method(Date, 'now', () => now);
    const time = isoTimeOncePerMs();
    const a = time();
    now -= 5;
    assert.notEqual(time(), a);
    assert.equal(time(), `,"time":"${new Date(now).toISOString()}"`);
  });
});
