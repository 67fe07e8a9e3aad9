// Another user's NOOP round trips while a scenario loads the server, measured from a Worker: the
// probe has an event loop of its own, so what it reports is the server's delay and not the
// benchmark client's own queue (its main thread drives 100 TLS transfers in the memory scenario,
// where a probe on the same loop waited behind them as long as the server did).

export interface NoopProbeTarget {
  imapPort: number;
  caPem: string;
  address: string;
  password: string;
}

export interface NoopProbe {
  /** Ends the probe (once; later calls give the same result); the round-trip times in ms. */
  stop(): Promise<number[]>;
}

/** Starts the probe (logged in, INBOX selected) and resolves once its first NOOP returned. */
export function startNoopProbe(t: NoopProbeTarget): Promise<NoopProbe> {
  const worker = new Worker(new URL("./noop_worker.ts", import.meta.url).href, { type: "module" });
  let onTimes: (times: number[]) => void = () => {};
  let onError: (err: Error) => void = () => {};
  const times = new Promise<number[]>((resolve, reject) => {
    onTimes = resolve;
    onError = reject;
  });
  return new Promise<NoopProbe>((ready, failed) => {
    worker.onmessage = (e: MessageEvent) => {
      const m = e.data as { ready?: true; times?: number[]; error?: string };
      if (m.ready) {
        let stopped: Promise<number[]> | null = null;
        ready({
          stop() {
            stopped ??= (async () => {
              worker.postMessage({ stop: true });
              try {
                return await times;
              } finally {
                worker.terminate();
              }
            })();
            return stopped;
          },
        });
      } else if (m.times) onTimes(m.times);
      else if (m.error) {
        const err = new Error(`NOOP probe: ${m.error}`);
        onError(err);
        failed(err);
        worker.terminate();
      }
    };
    worker.onerror = (e) => {
      e.preventDefault();
      const err = new Error(`NOOP probe: ${e.message}`);
      onError(err);
      failed(err);
      worker.terminate();
    };
    worker.postMessage(t);
  });
}
