// The OpenPGP half of the encryption policy (filtermail check_armored_payload): an armored payload
// passes only when it decodes to (PKESK | SKESK)* followed by exactly one SEIPD (RFC 9580 §5).
// Both the packet walk and the armor check run on a stream: bytes in, bounded state.

const TAG_PKESK = 1;
const TAG_SKESK = 3;
const TAG_SEIPD = 18;

const enum W {
  Header,
  NewLength,
  TwoOctet,
  FiveOctet,
  LegacyLength,
  Body,
  Failed,
}

/**
 * Walks packet headers as bytes arrive (RFC 9580 §4.2), skipping bodies without keeping them.
 * New-format partial lengths (224..254) skip a chunk and need another length octet; legacy
 * indeterminate lengths are refused. Every packet but the last must be PKESK or SKESK; the last
 * must be SEIPD and end exactly at the end of the data.
 */
export class PacketWalker {
  #state = W.Header;
  #tag = -1;
  /** Tag of the last complete packet (-1 before any). */
  #lastTag = -1;
  #need = 0;
  #acc = 0;
  #skip = 0;
  #partial = false;

  push(b: Uint8Array): void {
    let i = 0;
    const n = b.length;
    while (i < n) {
      switch (this.#state) {
        case W.Failed:
          return;
        case W.Body: {
          const take = Math.min(this.#skip, n - i);
          this.#skip -= take;
          i += take;
          if (this.#skip === 0) this.#bodyDone();
          break;
        }
        case W.Header: {
          // Data follows a complete packet: that packet must have been a session key packet.
          if (this.#lastTag >= 0 && this.#lastTag !== TAG_PKESK && this.#lastTag !== TAG_SKESK) {
            return void (this.#state = W.Failed);
          }
          const h = b[i++];
          if ((h & 0xc0) === 0xc0) {
            this.#tag = h & 0x3f;
            this.#state = W.NewLength;
          } else if ((h & 0xc0) === 0x80) {
            this.#tag = (h & 0x3c) >> 2;
            const lengthType = h & 3;
            if (lengthType === 3) return void (this.#state = W.Failed);
            this.#need = lengthType === 0 ? 1 : lengthType === 1 ? 2 : 4;
            this.#acc = 0;
            this.#state = W.LegacyLength;
          } else return void (this.#state = W.Failed);
          break;
        }
        case W.NewLength: {
          const o = b[i++];
          if (o < 192) this.#body(o, false);
          else if (o < 224) {
            this.#acc = (o - 192) << 8;
            this.#state = W.TwoOctet;
          } else if (o === 255) {
            this.#acc = 0;
            this.#need = 4;
            this.#state = W.FiveOctet;
          } else this.#body(1 << (o & 0x1f), true);
          break;
        }
        case W.TwoOctet:
          this.#body(this.#acc + b[i++] + 192, false);
          break;
        case W.FiveOctet:
        case W.LegacyLength:
          this.#acc = this.#acc * 256 + b[i++];
          if (--this.#need === 0) this.#body(this.#acc, false);
          break;
      }
    }
  }

  #body(length: number, partial: boolean) {
    this.#skip = length;
    this.#partial = partial;
    this.#state = W.Body;
    if (length === 0) this.#bodyDone();
  }

  #bodyDone() {
    if (this.#partial) this.#state = W.NewLength; // another length octet must follow
    else {
      this.#lastTag = this.#tag;
      this.#state = W.Header;
    }
  }

  /** True when the data ended right after a SEIPD that followed only session key packets. */
  end(): boolean {
    return this.#state === W.Header && this.#lastTag === TAG_SEIPD;
  }
}

/** True for zero or more session-key packets followed by exactly one SEIPD ending the data. */
export function checkOpenpgpPacketStream(b: Uint8Array): boolean {
  const w = new PacketWalker();
  w.push(b);
  return w.end();
}
