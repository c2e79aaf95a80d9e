import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { LastSeenRecorder, type LastSeenWriter } from './last-seen-recorder.ts';

class RecordingWriter implements LastSeenWriter {
  readonly calls: number[][] = [];
  failNext = false;
  async touchLastSeen(ids: number[]): Promise<void> {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('database down');
    }
    this.calls.push([...ids]);
  }
}

const silent = pino({ level: 'silent' });

describe('LastSeenRecorder', () => {
  test('many sightings become one write of distinct ids', async () => {
    const writer = new RecordingWriter();
    const recorder = new LastSeenRecorder(writer, silent, 3_600_000);
    for (let i = 0; i < 500; i++) recorder.seen(i % 7);
    assert.deepEqual(writer.calls, []);
    await recorder.flush();
    assert.deepEqual(writer.calls, [[0, 1, 2, 3, 4, 5, 6]]);
    await recorder.flush();
    assert.equal(writer.calls.length, 1, 'nothing new, nothing written');
  });

  test('seenOnce adds a machine once a batch, and again to the next batch', async () => {
    const writer = new RecordingWriter();
    const recorder = new LastSeenRecorder(writer, silent, 3_600_000);
    const reads: number[] = [];
    const sighting = (id: number) => ({
      seenInBatch: -1,
      get machine() {
        reads.push(id);
        return { id };
      },
    });
    const one = sighting(1);
    const two = sighting(2);
    for (let i = 0; i < 100; i++) recorder.seenOnce(i % 2 === 0 ? one : two);
    assert.deepEqual(reads, [1, 2], 'each machine read once while its batch is collected');
    await recorder.flush();
    assert.deepEqual(writer.calls, [[1, 2]]);
    recorder.seenOnce(one);
    recorder.seenOnce(one);
    await recorder.flush();
    assert.deepEqual(writer.calls, [[1, 2], [1]], 'a new batch takes the machine again');
    assert.deepEqual(reads, [1, 2, 1]);
  });

  test('the timer writes the batch by itself', async () => {
    let wrote!: () => void;
    const written = new Promise<void>((resolve) => (wrote = resolve));
    const writer: LastSeenWriter = { touchLastSeen: async () => wrote() };
    const recorder = new LastSeenRecorder(writer, silent, 1);
    recorder.seen(1);
    await written;
  });

  test('large batches are split; a failed write is logged and later ones still happen', async () => {
    const writer = new RecordingWriter();
    const recorder = new LastSeenRecorder(writer, silent, 3_600_000);
    for (let i = 0; i < 600; i++) recorder.seen(i);
    await recorder.flush();
    assert.deepEqual(writer.calls.map((c) => c.length), [100, 100, 100, 100, 100, 100]);
    assert.deepEqual(writer.calls.flat(), Array.from({ length: 600 }, (_, i) => i));
    writer.failNext = true;
    recorder.seen(1);
    await recorder.flush();
    recorder.seen(2);
    await recorder.flush();
    assert.deepEqual(writer.calls.at(-1), [2]);
  });

  test('a machine is written at most once a window by the timer; the rest waits, and a flush writes it', { timeout: 10_000 }, async () => {
    // The recorder's timer does not hold the process open; this does, while the test waits for it.
    const awake = setInterval(() => {}, 1000);
    const calls: number[][] = [];
    let notify: () => void = () => {};
    const writer: LastSeenWriter = {
      touchLastSeen: async (ids) => {
        calls.push([...ids]);
        notify();
      },
    };
    const nextWrite = () => new Promise<void>((resolve) => (notify = resolve));
    const recorder = new LastSeenRecorder(writer, silent, 1, 3_600_000);
    let written = nextWrite();
    recorder.seen(1);
    await written;
    written = nextWrite();
    recorder.seen(1);
    recorder.seen(2);
    await written;
    assert.deepEqual(calls, [[1], [2]], 'machine 1 waits for the next window');
    await recorder.flush();
    assert.deepEqual(calls, [[1], [2], [1]], 'a flush writes what waited');
    clearInterval(awake);
  });
});
