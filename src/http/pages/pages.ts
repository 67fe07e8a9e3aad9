// Server-rendered public pages: landing page with an invite QR code (inline SVG), relay limits,
// privacy notice. Values come from the configuration and the live settings.

import type { HttpAccounts, HttpConfig, HttpSettings } from "../backend.ts";
import { dcloginUrl, newAccountUrl, usesDclogin, webHost } from "../dclogin.ts";
import { escapeHtml, htmlPage } from "./layout.ts";

// The QR encoder loads with the first page that shows a code: a relay whose pages nobody opens
// does not keep it in memory.
let qrEncoder: Promise<typeof import("uqr")> | null = null;

export async function qrSvg(text: string, label: string): Promise<string> {
  const { renderSVG } = await (qrEncoder ??= import("uqr"));
  const svg = renderSVG(text, { ecc: "M", border: 2, pixelSize: 8 });
  return svg.replace("<svg ", `<svg class="qr" role="img" aria-label="${escapeHtml(label)}" `);
}

export function formatBytes(n: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1 && v % 1024 === 0) {
    v /= 1024;
    i++;
  }
  return `${v} ${units[i]}`;
}

async function inviteSection(
  config: HttpConfig,
  settings: HttpSettings,
  accounts: HttpAccounts,
): Promise<string> {
  const host = escapeHtml(webHost(config));
  const mode = settings.get("registration");
  if (mode === "closed" || settings.get("jit_enabled") !== "true") {
    return `<div class="card"><p><strong>Registration on ${host} is closed.</strong></p>
<p class="muted">Existing profiles keep working.</p></div>`;
  }
  if (mode === "token") {
    return `<div class="card"><p><strong>New profiles on ${host} need an invitation.</strong></p>
<p class="muted">Ask the operator of this relay for an invitation link.</p></div>`;
  }
  if (usesDclogin(config)) {
    // Self-signed or IP relay: clients cannot verify us, so hand out ready credentials.
    const { email, password } = accounts.generateCredentials();
    const link = dcloginUrl(config, email, password);
    return `<div class="card">
${await qrSvg(link, `Delta Chat login for ${email}`)}
<a class="button" href="${escapeHtml(link)}">Get a ${host} chat profile</a>
<p class="muted">Scan the code with Delta Chat (“Add profile”, then the QR icon), or tap the button on
a device with Delta Chat. This relay uses its own certificate; the link tells Delta Chat to accept it.
Every visit shows a new, unused profile: <code>${escapeHtml(email)}</code>.</p>
</div>`;
  }
  const link = `DCACCOUNT:${newAccountUrl(config)}`;
  return `<div class="card">
${await qrSvg(link, `Delta Chat invite for ${webHost(config)}`)}
<a class="button" href="${
    escapeHtml(`dcaccount:${newAccountUrl(config)}`)
  }">Get a ${host} chat profile</a>
<p class="muted">Scan the code with Delta Chat (“Add profile”, then the QR icon), or tap the button on
a device with Delta Chat installed.</p>
</div>`;
}

export async function landingPage(
  config: HttpConfig,
  settings: HttpSettings,
  accounts: HttpAccounts,
): Promise<string> {
  const host = escapeHtml(webHost(config));
  return htmlPage({
    title: `${webHost(config)} chatmail relay`,
    body: `<h1>${host}</h1>
<p>This is a <strong>chatmail relay</strong>: a small, fast e-mail server for
<a href="https://delta.chat">Delta Chat</a>. It creates a profile instantly, without a phone number
or personal data, and passes on only end-to-end encrypted messages.</p>
${await inviteSection(config, settings, accounts)}
<p class="muted">See <a href="/info">what this relay allows</a> and
<a href="/privacy">what it stores</a>.</p>`,
  });
}

export function infoPage(config: HttpConfig): string {
  const host = escapeHtml(config.mailDomain);
  const l = config.limits;
  return htmlPage({
    title: `${webHost(config)}: limits`,
    body: `<h1>Using ${host}</h1>
<h2>Encryption only</h2>
<p>Unencrypted messages are rejected, to recipients on ${host} and outside it. Only the setup
messages Delta Chat exchanges to start an encrypted chat pass without encryption.</p>
<h2>Limits</h2>
<ul>
<li>You may send up to ${l.sendPerMinute} messages per minute.</li>
<li>A message may be at most ${formatBytes(l.maxMessageBytes)} large.</li>
<li>You can store up to ${formatBytes(l.maxMailboxBytes)} of messages on the relay.</li>
<li>Messages are removed from the relay at the latest ${l.deleteMailsAfterDays} days after arriving;
large messages (over 200 kB) after ${l.deleteLargeAfterDays} days. Delta Chat normally fetches them
within seconds.</li>
</ul>
<h2>Deleting your profile</h2>
<p>Remove the profile from all your devices. The relay deletes an account automatically
${l.deleteInactiveUsersAfterDays} days after its last login, together with every message it still holds.</p>`,
  });
}

export function privacyPage(config: HttpConfig, settings: HttpSettings): string {
  const host = escapeHtml(config.mailDomain);
  const contact = settings.get("admin_contact") || config.adminContact;
  const l = config.limits;
  return htmlPage({
    title: `${webHost(config)}: privacy`,
    body: `<h1>Privacy on ${host}</h1>
<p>This relay is built to know as little as possible about its users.</p>
<h2>What is stored</h2>
<ul>
<li>Your address and a salted hash of your password (never the password itself).</li>
<li>Messages waiting for your devices. They are end-to-end encrypted: the relay cannot read
them. They are deleted at the latest ${l.deleteMailsAfterDays} days after arriving.</li>
<li>The day of your last login, to delete unused accounts after ${l.deleteInactiveUsersAfterDays} days.</li>
<li>Push tokens your devices register, to wake them up when a message arrives. The notification
service learns only that a device has new mail, not from whom or what.</li>
</ul>
<h2>What is not stored</h2>
<p>No phone number, no name, no contact list. By default the relay writes no logs about its
users; message contents are never logged.</p>
<h2>Deletion</h2>
<p>Remove the profile from your devices and the account with all its data is deleted
${l.deleteInactiveUsersAfterDays} days after the last login.</p>
<h2>Contact</h2>
<p>${
      contact
        ? `The operator can be reached at ${escapeHtml(contact)}.`
        : "The operator has not published a contact address."
    }</p>`,
  });
}
