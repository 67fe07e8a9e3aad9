// Registration tokens over the TokenStore: creation with a random value, status and the JSON view.
// Plain functions so a CLI command can use the same rules as the admin API.

import { randomBytes } from "node:crypto";
import { RelayError } from "../errors.ts";
import type { RegistrationToken, TokenStore } from "../store/types.ts";

export type TokenStatus = "active" | "exhausted" | "expired";

const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

/** 24 characters from [a-z0-9] (about 124 bits), unbiased. */
export function randomToken(length = 24): string {
  let s = "";
  while (s.length < length) {
    for (const b of randomBytes(length * 2)) {
      if (b < 252 && s.length < length) s += ALPHABET[b % 36];
    }
  }
  return s;
}

export function tokenStatus(t: RegistrationToken, now: number): TokenStatus {
  if (t.expiresAt !== null && t.expiresAt <= now) return "expired";
  return t.uses >= t.maxUses ? "exhausted" : "active";
}

export interface NewTokenInput {
  maxUses?: number;
  expiresInHours?: number;
  comment?: string;
  /** A chosen value instead of a random one. */
  token?: string;
}

/** Creates and stores a token; throws RelayError invalid_argument / conflict. */
export async function createRegistrationToken(
  store: Pick<TokenStore, "createToken" | "getToken">,
  input: NewTokenInput,
  now: number,
): Promise<RegistrationToken> {
  const maxUses = input.maxUses ?? 1;
  if (!Number.isInteger(maxUses) || maxUses < 1) {
    throw new RelayError(
      "invalid_argument",
      `Cannot create token: max_uses must be a positive integer, got ${maxUses}`,
    );
  }
  if (input.expiresInHours !== undefined && !(input.expiresInHours > 0)) {
    throw new RelayError(
      "invalid_argument",
      "Cannot create token: expires_in_hours must be positive",
    );
  }
  const token = input.token ?? randomToken();
  if (!/^[A-Za-z0-9_-]{6,100}$/.test(token)) {
    throw new RelayError(
      "invalid_argument",
      "Cannot create token: use 6 to 100 characters from A-Z, a-z, 0-9, '_' and '-'",
    );
  }
  const exists = () => new RelayError("conflict", `Token "${token}" already exists`);
  if (await store.getToken(token)) throw exists();
  const t: RegistrationToken = {
    token,
    maxUses,
    uses: 0,
    expiresAt: input.expiresInHours === undefined
      ? null
      : now + Math.round(input.expiresInHours * 3600_000),
    createdAt: now,
    comment: input.comment ?? "",
  };
  try {
    await store.createToken(t);
  } catch (err) {
    // Created meanwhile by a concurrent request (the store's unique key refused this one).
    if (await store.getToken(token)) throw exists();
    throw err;
  }
  return t;
}

export function tokenJson(t: RegistrationToken, now: number) {
  return {
    token: t.token,
    max_uses: t.maxUses,
    uses: t.uses,
    expires_at: t.expiresAt,
    created_at: t.createdAt,
    comment: t.comment,
    status: tokenStatus(t, now),
  };
}
