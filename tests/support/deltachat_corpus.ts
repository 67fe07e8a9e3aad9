// The captured Delta Chat 2.57 messages in tests/fixtures/deltachat/ (see its README): what real
// cores sent, read with the facts scripts/make_deltachat_corpus.ts recorded about each.

export const CORPUS_DIR = new URL("../fixtures/deltachat/", import.meta.url);
/** The domain of every address in the corpus. */
export const CORPUS_DOMAIN = "chat.test";

export interface CorpusMessage {
  file: string;
  /** What the cores were doing (securejoin-alice-bob, text-alice-to-bob, reaction-bob…). */
  step: string;
  /** The sending core: alice, bob or carol. */
  sender: string;
  /** Envelope sender and recipients (recipients by core name). */
  from: string;
  to: string[];
  bytes: Uint8Array;
  /** OpenPGP packet tags of the encrypted payload, e.g. [1, 1, 18]. */
  packets: number[];
}

export function deltaChatCorpus(): CorpusMessage[] {
  const index = JSON.parse(Deno.readTextFileSync(new URL("index.json", CORPUS_DIR))) as Omit<
    CorpusMessage,
    "bytes"
  >[];
  return index.map((e) => ({ ...e, bytes: Deno.readFileSync(new URL(e.file, CORPUS_DIR)) }));
}
