// Accounts: login with just-in-time creation (chatmail rules), credential policy, blocking,
// registration state and tokens. Shared by SMTP AUTH, IMAP LOGIN, /new, CLI and admin API.

import { isRelayError, RelayError } from "../errors.ts";
import type { AccountRecord, Store } from "../store/types.ts";
import type { SettingsService } from "../settings/mod.ts";
import type { EventBus } from "../events/mod.ts";
import { LoginThrottle, scryptHasher } from "../auth/mod.ts";
import type { LoginGate, PasswordHasher } from "../auth/mod.ts";
import type { Logger } from "../log/mod.ts";
import { limitKey } from "../net/mod.ts";
import { createHash, randomBytes } from "node:crypto";

export interface AccountLimits {
  usernameMinLength: number;
  usernameMaxLength: number;
  passwordMinLength: number;
  /** JIT creations per client address per hour; 0 disables the limit. */
  maxCreationsPerIpPerHour: number;
}

export interface AccountServiceOptions {
  store: Store;
  settings: SettingsService;
  bus?: EventBus;
  /** The mail domain as it appears in addresses: "example.org" or "[192.0.2.1]". */
  domain: string;
  limits: AccountLimits;
  now?: () => number;
  throttle?: LoginGate;
  /**
   * Counts a just-in-time creation from a client address when fewer than `max` happened within
   * the hour (kept elsewhere when several instances share a store); default: in memory.
   */
  creations?: CreationRate;
  /** Waits before throttled attempts; injectable so tests need not sleep. */
  sleep?: (ms: number) => Promise<void>;
  /** Password hashing; tests inject a counting one. */
  hasher?: PasswordHasher;
  log?: Logger;
  /** The admin_contact config key: the operator's address when the setting is empty. */
  adminContact?: string;
}

const LOCALPART = /^[a-z0-9._-]+$/;
/**
 * Names no first login may take: the role mailboxes of RFC 2142 and RFC 5321 §4.5.1, and those a
 * certificate authority may mail to prove control of the domain (CA/Browser Forum Baseline
 * Requirements 3.2.2.4.4). The operator can still create them (CLI, admin API).
 */
const RESERVED_NAMES = new Set([
  "postmaster",
  "mailer-daemon",
  "abuse",
  "hostmaster",
  "webmaster",
  "admin",
  "administrator",
  "root",
]);
const RESERVED_PREFIX = "internal.reserved:";
const RESERVATION_MS = 24 * 3600_000;
const VERIFIED_CACHE_MAX = 50_000;

const utcDay = (ms: number) => Math.floor(ms / 86_400_000);

/** Where just-in-time creations per client address are counted. */
export interface CreationRate {
  /** Counts one creation from `ip` at `now` when fewer than `max` came in the hour before. */
  take(ip: string, max: number, now: number): boolean | Promise<boolean>;
}

/** Creations counted in this process's memory (one instance). */
export class MemoryCreationRate implements CreationRate {
  #creations = new Map<string, number[]>();

  take(ip: string, max: number, now: number): boolean {
    const recent = (this.#creations.get(ip) ?? []).filter((t) => now - t < 3600_000);
    if (recent.length >= max) {
      this.#creations.set(ip, recent);
      return false;
    }
    recent.push(now);
    this.#creations.set(ip, recent);
    if (this.#creations.size > 100_000) this.#sweep(now);
    return true;
  }

  #sweep(now: number) {
    for (const [ip, times] of this.#creations) {
      if (times.every((t) => now - t >= 3600_000)) this.#creations.delete(ip);
    }
  }
}

function isReservedName(address: string): boolean {
  return RESERVED_NAMES.has(address.slice(0, address.lastIndexOf("@")).toLowerCase());
}

export class AccountService {
  readonly domain: string;
  readonly limits: AccountLimits;
  #store: Store;
  #settings: SettingsService;
  #bus?: EventBus;
  #now: () => number;
  #throttle: LoginGate;
  #sleep: (ms: number) => Promise<void>;
  #hasher: PasswordHasher;
  #log?: Logger;
  /** Matches no password; verified where no real hash is, to spend the same time. */
  #dummyHash: string;
  #inflight = new Map<string, Promise<AccountRecord>>();
  /** Digests of (address, password, hash) already verified: repeated logins skip scrypt. */
  #verified = new Set<string>();
  #creations: CreationRate;
  #adminContact: string;

  constructor(options: AccountServiceOptions) {
    this.#store = options.store;
    this.#settings = options.settings;
    this.#bus = options.bus;
    this.domain = options.domain.toLowerCase();
    this.limits = options.limits;
    this.#now = options.now ?? Date.now;
    this.#throttle = options.throttle ?? new LoginThrottle({ now: this.#now });
    this.#creations = options.creations ?? new MemoryCreationRate();
    this.#sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.#hasher = options.hasher ?? scryptHasher;
    this.#dummyHash = this.#hasher.dummyHash();
    this.#log = options.log;
    this.#adminContact = options.adminContact ?? "";
  }

  /** Lowercased address when it belongs to our domain, else null. */
  localAddress(address: string): string | null {
    const a = address.trim().toLowerCase();
    const at = a.lastIndexOf("@");
    if (at <= 0 || a.slice(at + 1) !== this.domain) return null;
    return a;
  }

  isLocalDomain(domain: string): boolean {
    return domain.toLowerCase() === this.domain;
  }

  getAccount(address: string): Promise<AccountRecord | null> {
    return this.#store.getAccount(address.toLowerCase());
  }

  /** Why an address/password pair may not be used to create an account, or null. */
  credentialProblem(address: string, password: string): string | null {
    const a = this.localAddress(address);
    if (!a) return `address must end with @${this.domain}`;
    const local = a.slice(0, a.lastIndexOf("@"));
    const { usernameMinLength: min, usernameMaxLength: max, passwordMinLength } = this.limits;
    if (local.length < min || local.length > max) {
      return min === max
        ? `username must be ${min} characters long`
        : `username must be ${min} to ${max} characters long`;
    }
    if (!LOCALPART.test(local)) return "username may only contain a-z, 0-9, '.', '_' and '-'";
    if (password.length < passwordMinLength) {
      return `password must be at least ${passwordMinLength} characters long`;
    }
    return null;
  }

  /**
   * Checks a login. An unknown address of our domain is created on first login when JIT is on,
   * registration allows it and the credentials meet the policy. Concurrent first logins create one
   * account; a wrong password never changes the stored hash.
   *
   * Every failure costs one password verification, whether or not the name exists (a dummy hash
   * stands in for a missing one), so the reply time does not tell which names exist. Attempts are
   * throttled per client address and per account name (LoginThrottle); a throttled attempt that
   * would wait too long fails with rate_limited.
   *
   * `authzid` is a SASL authorization identity the client asked to act as: acting as another
   * user is not offered, so one that does not name `address` (case aside) fails the login like a
   * wrong password (counted, and never creating an account), as Dovecot and Postfix answer it.
   */
  async authenticate(
    address: string,
    password: string,
    ctx: { ip?: string; authzid?: string } = {},
  ): Promise<AccountRecord> {
    // Throttling and the creation limit count an IPv6 client by its /64: a host that has a
    // whole /64 would otherwise get a fresh budget from each of its addresses.
    const ip = limitKey(ctx.ip ?? "");
    const name = this.localAddress(address) ?? address.trim().toLowerCase();
    const gate = await this.#throttle.admit(ip, name);
    if ("refused" in gate) {
      throw new RelayError(
        "rate_limited",
        `Too many failed logins, try again in ${Math.ceil(gate.retryAfterMs / 1000)} s`,
      );
    }
    if (gate.wait > 0) await this.#sleep(gate.wait);
    const work = { done: false };
    try {
      if (ctx.authzid && ctx.authzid.toLowerCase() !== address.toLowerCase()) {
        throw new RelayError("auth_failed", "Authentication failed");
      }
      const account = await this.#authenticate(address, password, ip, work);
      await this.#throttle.recordSuccess(ip, name);
      return account;
    } catch (err) {
      if (!work.done) await this.#hasher.verify(password, this.#dummyHash);
      // Too many creations from the address is no password failure; everything else counts.
      if (!isRelayError(err, "rate_limited")) await this.#throttle.recordFailure(ip, name);
      throw err;
    }
  }

  async #authenticate(
    address: string,
    password: string,
    ip: string,
    work: { done: boolean },
  ): Promise<AccountRecord> {
    const a = this.localAddress(address);
    if (!a || password.length === 0) throw new RelayError("auth_failed", "Authentication failed");
    let account = await this.#store.getAccount(a);
    if (!account) account = await this.#createOnFirstLogin(a, password, ip, work);
    if (!(await this.#checkPassword(a, password, account.passwordHash, work))) {
      throw new RelayError("auth_failed", "Authentication failed");
    }
    if (account.blocked) throw new RelayError("account_blocked", "Account is blocked");
    // The last login is kept to the day, as the reference relay keeps it: one write (and fsync)
    // per account and day, not one per login, and no finer record of when people log in.
    const now = this.#now();
    if (account.lastLoginAt === null || utcDay(account.lastLoginAt) !== utcDay(now)) {
      // Best-effort: a login must not need a write (a full disk would lock everyone out, and
      // nobody could delete mail to free space). The day only feeds inactive-account expiry.
      await this.#store.recordLogin(account.id, now).catch((err) =>
        this.#log?.debug("login day not recorded", { error: String(err) })
      );
    }
    if (this.#hasher.needsRehash(account.passwordHash)) {
      account = await this.#rehash(account, password);
    }
    return account;
  }

  /** Stores a hash with the current parameters; a failure keeps the old one (still valid). */
  async #rehash(account: AccountRecord, password: string): Promise<AccountRecord> {
    try {
      const passwordHash = await this.#hasher.hash(password);
      await this.#store.setPasswordHash(account.id, passwordHash);
      this.#remember(account.address, password, passwordHash);
      return { ...account, passwordHash };
    } catch (err) {
      this.#log?.debug("password rehash failed; the old hash stays", { error: String(err) });
      return account;
    }
  }

  #digest(address: string, password: string, hash: string): string {
    return createHash("sha256").update(`${address}\0${password}\0${hash}`).digest("base64");
  }

  #remember(address: string, password: string, hash: string) {
    if (this.#verified.size >= VERIFIED_CACHE_MAX) this.#verified.clear();
    this.#verified.add(this.#digest(address, password, hash));
  }

  async #checkPassword(
    address: string,
    password: string,
    hash: string,
    work: { done: boolean },
  ): Promise<boolean> {
    if (this.#verified.has(this.#digest(address, password, hash))) return true;
    work.done = true;
    const ok = await this.#hasher.verify(password, hash);
    if (ok) this.#remember(address, password, hash);
    return ok;
  }

  /**
   * Concurrent first logins of one address share one creation; each login then checks its own
   * password against the created hash (the creator's is already in the verified cache).
   */
  #createOnFirstLogin(
    address: string,
    password: string,
    ip: string,
    work: { done: boolean },
  ): Promise<AccountRecord> {
    let p = this.#inflight.get(address);
    if (!p) {
      p = this.#create(address, password, ip, work).finally(() => this.#inflight.delete(address));
      this.#inflight.set(address, p);
    }
    return p;
  }

  async #create(
    address: string,
    password: string,
    ip: string,
    work: { done: boolean },
  ): Promise<AccountRecord> {
    if (!this.#settings.bool("jit_enabled")) {
      throw new RelayError("auth_failed", "Authentication failed");
    }
    const mode = this.#settings.get("registration");
    const reserved = await this.#store.getSetting(RESERVED_PREFIX + address);
    const hasReservation = reserved !== null && Number(reserved) > this.#now();
    if (mode === "closed" || (mode === "token" && !hasReservation)) {
      throw new RelayError("registration_closed", "Registration is closed");
    }
    if (this.credentialProblem(address, password) || isReservedName(address)) {
      throw new RelayError("auth_failed", "Authentication failed");
    }
    const blocked = () => new RelayError("auth_failed", "Authentication failed");
    if (await this.#store.isBlocked(address)) throw blocked();
    await this.#checkCreationRate(ip);
    work.done = true;
    const passwordHash = await this.#hasher.hash(password);
    // Looked at again with the creation: an address blocked while the hash was made stays free.
    const made = await this.#store.createAccountUnlessBlocked({
      address,
      passwordHash,
      now: this.#now(),
    });
    if (!made) throw blocked();
    const { account, created } = made;
    if (created) this.#remember(address, password, passwordHash);
    if (created && hasReservation) await this.#store.setSetting(RESERVED_PREFIX + address, null);
    return account;
  }

  async #checkCreationRate(ip: string) {
    const max = this.limits.maxCreationsPerIpPerHour;
    if (max <= 0 || !ip) return;
    if (!(await this.#creations.take(ip, max, this.#now()))) {
      throw new RelayError("rate_limited", "Too many new accounts from this address");
    }
  }

  /**
   * Where mail for postmaster@domain goes (RFC 5321 §4.5.1: it must be accepted): the postmaster
   * account when there is one, else the local account named by admin_contact (the setting, else
   * the config key), else a postmaster account made now with no usable password (the operator
   * sets one to read it).
   */
  async postmasterRecipient(): Promise<string> {
    const address = `postmaster@${this.domain}`;
    const own = await this.#store.getAccount(address);
    if (own && !own.blocked) return address;
    const contact = this.localAddress(
      (this.#settings.get("admin_contact") || this.#adminContact).replace(/^mailto:/i, "")
        .replace(/\?.*$/, ""),
    );
    if (contact) {
      const account = await this.#store.getAccount(contact);
      if (account && !account.blocked) return account.address;
    }
    if (!own) {
      const made = await this.#store.createAccount({
        address,
        passwordHash: this.#hasher.dummyHash(),
        now: this.#now(),
      });
      if (made.created) this.#log?.info("postmaster account made for mail to postmaster");
    }
    return address;
  }

  /** Fresh random credentials of the configured lengths (not stored: the first login creates). */
  generateCredentials(): { email: string; password: string } {
    const alnum = "abcdefghijklmnopqrstuvwxyz0123456789";
    const pwChars = alnum + "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const pick = (chars: string, n: number) => {
      let s = "";
      while (s.length < n) {
        for (const b of randomBytes(n * 2)) {
          // Rejection sampling keeps every character equally likely.
          if (b < 256 - (256 % chars.length) && s.length < n) s += chars[b % chars.length];
        }
      }
      return s;
    };
    const user = pick(alnum, this.limits.usernameMaxLength);
    return {
      email: `${user}@${this.domain}`,
      password: pick(pwChars, this.limits.passwordMinLength + 3),
    };
  }

  /** Marks an address as reserved by a registration token, so its first login may create it. */
  async reserve(address: string): Promise<void> {
    await this.#store.setSetting(
      RESERVED_PREFIX + address.toLowerCase(),
      String(this.#now() + RESERVATION_MS),
    );
  }

  /** Creates an account directly (CLI, admin API). */
  async create(address: string, password: string): Promise<AccountRecord> {
    const problem = this.credentialProblem(address, password);
    if (problem) {
      throw new RelayError("invalid_credentials_policy", `Cannot create account: ${problem}`);
    }
    const { account, created } = await this.#store.createAccount({
      address: address.toLowerCase(),
      passwordHash: await this.#hasher.hash(password),
      now: this.#now(),
    });
    if (!created) {
      throw new RelayError("account_exists", `Account ${account.address} already exists`);
    }
    return account;
  }

  async #mustGet(address: string): Promise<AccountRecord> {
    const a = await this.#store.getAccount(address.toLowerCase());
    if (!a) throw new RelayError("account_not_found", `No account ${address.toLowerCase()}`);
    return a;
  }

  async delete(address: string): Promise<void> {
    const a = await this.#mustGet(address);
    await this.#store.deleteAccount(a.id);
    this.#bus?.publish({ type: "account.deleted", accountId: a.id });
  }

  async setBlocked(address: string, blocked: boolean): Promise<AccountRecord> {
    const a = await this.#mustGet(address);
    await this.#store.setAccountBlocked(a.id, blocked);
    if (blocked) this.#bus?.publish({ type: "account.deleted", accountId: a.id });
    return { ...a, blocked };
  }

  async setPassword(address: string, password: string): Promise<void> {
    const a = await this.#mustGet(address);
    if (password.length < this.limits.passwordMinLength) {
      throw new RelayError(
        "invalid_credentials_policy",
        `Cannot set password: must be at least ${this.limits.passwordMinLength} characters long`,
      );
    }
    await this.#store.setPasswordHash(a.id, await this.#hasher.hash(password));
  }

  list(query: { search?: string; offset?: number; limit?: number }) {
    return this.#store.listAccounts(query);
  }
}
