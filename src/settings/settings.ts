// Dynamic settings: typed, validated keys kept in the store, changeable at run time (CLI, admin
// API) without a restart. Reads are served from memory; writes announce themselves on the bus.

import { RelayError } from "../errors.ts";
import type { EventBus } from "../events/mod.ts";
import type { SettingsStore } from "../store/types.ts";
import { compactAppVersions, DEFAULT_APP_VERSIONS } from "./app_versions.ts";

type Kind = "boolean" | "enum" | "list" | "string" | "json";

interface SettingSpec {
  kind: Kind;
  default: string;
  values?: readonly string[];
  doc: string;
  secret?: boolean;
}

export const SETTINGS = {
  registration: {
    kind: "enum",
    values: ["open", "closed", "token"],
    default: "open",
    doc:
      "open: anyone may create an account; token: only with a registration token; closed: nobody",
  },
  jit_enabled: {
    kind: "boolean",
    default: "true",
    doc: "Create an account on the first login of an unknown address",
  },
  push_enabled: { kind: "boolean", default: "true", doc: "Send push notifications" },
  turn_enabled: { kind: "boolean", default: "true", doc: "Offer TURN credentials to clients" },
  iroh_enabled: {
    kind: "boolean",
    default: "true",
    doc:
      "Offer an iroh relay for webxdc realtime apps (the embedded one unless iroh_relay names another); off: none is served or offered",
  },
  federation_mode: {
    kind: "enum",
    values: ["blocklist", "allowlist"],
    default: "blocklist",
    doc:
      "blocklist: exchange mail with every domain not blocked; allowlist: only with listed domains",
  },
  federation_allowlist: {
    kind: "list",
    default: "",
    doc: "Domains allowed in allowlist mode, separated by commas, spaces or line breaks",
  },
  admin_contact: {
    kind: "string",
    default: "",
    doc: "Operator contact on the privacy page; overrides the admin_contact config key there",
  },
  app_versions: {
    kind: "json",
    default: JSON.stringify(DEFAULT_APP_VERSIONS),
    doc:
      "App releases offered to clients as METADATA /shared/vendor/deltachat/appversions (JSON, the reference's schema); empty serves nothing",
  },
} as const satisfies Record<string, SettingSpec>;

export type SettingKey = keyof typeof SETTINGS;

/** One domain of federation_allowlist (as PUT /federation checks it): a name or [address]. */
const ALLOWLIST_DOMAIN = /^(\[[0-9a-f:.]+\]|[a-z0-9_]([a-z0-9_.-]*[a-z0-9])?)$/i;

export function isSettingKey(key: string): key is SettingKey {
  return Object.hasOwn(SETTINGS, key);
}

export function validateSetting(key: string, value: string): string {
  if (!isSettingKey(key)) {
    throw new RelayError(
      "invalid_argument",
      `Unknown setting "${key}"; known: ${Object.keys(SETTINGS).join(", ")}`,
    );
  }
  const spec: SettingSpec = SETTINGS[key];
  const v = value.trim();
  if (spec.kind === "boolean") {
    const b = ({
      true: "true",
      false: "false",
      on: "true",
      off: "false",
      "1": "true",
      "0": "false",
      yes: "true",
      no: "false",
    } as Record<string, string>)[v.toLowerCase()];
    if (!b) {
      throw new RelayError(
        "invalid_argument",
        `Invalid value for "${key}": expected true or false, got "${value}"`,
      );
    }
    return b;
  }
  if (spec.kind === "enum" && !spec.values!.includes(v)) {
    throw new RelayError(
      "invalid_argument",
      `Invalid value for "${key}": expected one of ${spec.values!.join(", ")}, got "${value}"`,
    );
  }
  if (spec.kind === "list") {
    const domains = v.split(/[,\s]+/).filter(Boolean).map((s) => s.toLowerCase());
    const bad = domains.find((d) => !ALLOWLIST_DOMAIN.test(d));
    if (bad !== undefined) {
      throw new RelayError(
        "invalid_argument",
        `Invalid value for "${key}": not a domain: ${JSON.stringify(bad)}`,
      );
    }
    return domains.join(",");
  }
  if (spec.kind === "json" && v !== "") {
    try {
      return compactAppVersions(v);
    } catch (err) {
      throw new RelayError(
        "invalid_argument",
        `Invalid value for "${key}": ${(err as Error).message}`,
      );
    }
  }
  return v;
}

export class SettingsService {
  #store: SettingsStore;
  #bus?: EventBus;
  #values = new Map<SettingKey, string>();
  #defaults: Partial<Record<SettingKey, string>>;

  constructor(
    options: {
      store: SettingsStore;
      bus?: EventBus;
      /** Defaults from the static config (e.g. app_versions_file), validated like values. */
      defaults?: Partial<Record<SettingKey, string>>;
    },
  ) {
    this.#store = options.store;
    this.#bus = options.bus;
    this.#defaults = {};
    for (const [k, v] of Object.entries(options.defaults ?? {}) as [SettingKey, string][]) {
      this.#defaults[k] = validateSetting(k, v);
    }
  }

  #default(key: SettingKey): string {
    return this.#defaults[key] ?? SETTINGS[key].default;
  }

  /** Loads stored values; call once at start. */
  async load(): Promise<void> {
    for (const key of Object.keys(SETTINGS) as SettingKey[]) {
      const v = await this.#store.getSetting(key);
      if (v !== null) this.#values.set(key, v);
      else this.#values.delete(key);
    }
  }

  get(key: SettingKey): string {
    return this.#values.get(key) ?? this.#default(key);
  }

  bool(key: SettingKey): boolean {
    return this.get(key) === "true";
  }

  list(key: SettingKey): string[] {
    return this.get(key).split(",").filter(Boolean);
  }

  all(): {
    key: SettingKey;
    value: string;
    default: string;
    doc: string;
    kind: Kind;
    values?: readonly string[];
  }[] {
    return (Object.keys(SETTINGS) as SettingKey[]).map((key) => {
      const spec: SettingSpec = SETTINGS[key];
      return {
        key,
        value: this.get(key),
        default: this.#default(key),
        doc: spec.doc,
        kind: spec.kind,
        values: spec.values,
      };
    });
  }

  async set(key: string, value: string | null): Promise<string> {
    if (!isSettingKey(key)) validateSetting(key, "");
    const k = key as SettingKey;
    const v = value === null ? null : validateSetting(k, value);
    await this.#store.setSetting(k, v);
    if (v === null) this.#values.delete(k);
    else this.#values.set(k, v);
    this.#bus?.publish({ type: "settings.changed", key: k });
    return this.get(k);
  }
}
