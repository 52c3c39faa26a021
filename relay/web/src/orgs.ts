// The Organizations tab: the caller's organizations, invitations waiting for them, creating one,
// and one organization's members and invitations, with the actions the caller's role allows
// (the server decides; the page only hides what would be refused). Plain DOM through `el`.

import { api, type AuditEntry, type OrgDetails, type OrgKeyStatus, type OrgRole } from './api';
import { el } from './dom';

const ROLES: OrgRole[] = ['owner', 'admin', 'member', 'auditor'];

/** Members an owner or admin may grant the organization's key to: not auditors (they do not
 * connect), not those who hold it already. */
export function grantable(org: OrgDetails, key: OrgKeyStatus | null): string[] {
  if (!key || key.generation === null) return [];
  return org.members
    .filter((m) => m.role !== 'auditor' && !key.holders.includes(m.member))
    .map((m) => m.member);
}

/** Whether `role` reads the organization's audit log (the server answers a member 403). */
export function readsAuditLog(role: OrgRole): boolean {
  return role !== 'member';
}

/** One audit entry as a row: when, who acted, what, the details as compact JSON, from where. */
export function auditRow(entry: AuditEntry): [string, string, string, string, string] {
  return [new Date(entry.at).toISOString().replace('T', ' ').slice(0, 19),
    entry.actor ?? '', entry.kind, JSON.stringify(entry.details), entry.ip ?? ''];
}

/** Roles a caller with `role` may give (or take from someone holding `from`). */
export function assignableRoles(role: OrgRole, from: OrgRole | null): OrgRole[] {
  if (role === 'owner') return ROLES;
  if (role === 'admin' && from !== 'owner') return ROLES.filter((r) => r !== 'owner');
  return [];
}

type Busy = (button: HTMLButtonElement | null, work: () => Promise<void>) => Promise<void>;
type Notify = (message: string, kind?: 'error' | 'info') => void;

export class OrgsView {
  /** The organization shown below the list, if any. */
  private open: string | null = null;

  constructor(
    private readonly root: HTMLElement,
    private readonly busy: Busy,
    private readonly notify: Notify,
    /** The signed-in identity, to offer Leave on the caller's own row. */
    private readonly whoami: () => string | null,
  ) {}

  /** Build the static parts once: the create form. */
  mount(): void {
    const form = this.root.querySelector<HTMLFormElement>('#org-create-form');
    form?.addEventListener('submit', (event) => {
      event.preventDefault();
      const submit = form.querySelector('button[type=submit]') as HTMLButtonElement;
      void this.busy(submit, async () => {
        const data = new FormData(form);
        const created = await api.createOrg(String(data.get('slug') ?? '').trim(),
          String(data.get('name') ?? '').trim());
        form.reset();
        this.open = created.slug;
        await this.refresh();
        this.notify(`Organization "${created.name}" created.`, 'info');
      });
    });
  }

  async refresh(): Promise<void> {
    const [orgs, invitations] = await Promise.all([api.orgs(), api.myInvitations()]);
    const rows = this.part('org-rows');
    rows.replaceChildren();
    for (const org of orgs) {
      const row = el('tr');
      const openButton = el('button', { type: 'button', class: 'small',
        'aria-label': `Open ${org.name}` }, 'Open');
      openButton.addEventListener('click', () => {
        this.open = org.slug;
        void this.busy(openButton, () => this.showOrg());
      });
      const actions = el('td');
      actions.append(openButton);
      row.append(el('td', {}, org.name), el('td', { class: 'fp' }, org.slug),
        el('td', {}, org.role), actions);
      rows.append(row);
    }
    this.part('no-orgs').hidden = orgs.length > 0;

    const waiting = this.part('invitation-rows');
    waiting.replaceChildren();
    for (const invitation of invitations) {
      const item = el('li', {}, `${invitation.org_name} (${invitation.slug}) as ${invitation.role}, `
        + `from ${invitation.invited_by} `);
      const accept = el('button', { type: 'button', class: 'small',
        'aria-label': `Accept the invitation to ${invitation.org_name}` }, 'Accept');
      accept.addEventListener('click', () => void this.busy(accept, async () => {
        const joined = await api.acceptInvitation(invitation.slug);
        this.open = joined.slug;
        await this.refresh();
        this.notify(`You joined "${joined.name}" as ${joined.role}.`, 'info');
      }));
      item.append(accept);
      waiting.append(item);
    }
    this.part('my-invitations').hidden = invitations.length === 0;
    if (this.open && !orgs.some((org) => org.slug === this.open)) this.open = null;
    await this.showOrg();
  }

  private async showOrg(): Promise<void> {
    const host = this.part('org-detail');
    if (!this.open) {
      host.replaceChildren();
      host.hidden = true;
      return;
    }
    const org = await api.org(this.open);
    const manages = org.role === 'owner' || org.role === 'admin';
    const key = manages ? await api.orgKey(org.slug) : null;
    host.hidden = false;
    host.replaceChildren(el('h2', { id: 'org-detail-title' }, `${org.name}`),
      el('p', { class: 'hint' }, `Slug ${org.slug}; your role: ${org.role}.`));
    if (key) host.append(this.keyPanel(org, key));
    host.append(this.membersTable(org, key));
    if (org.invitations) host.append(this.invitations(org), this.inviteForm(org));
    if (readsAuditLog(org.role)) host.append(this.auditPanel(org));
  }

  /** The organization's audit log, for the roles that read it: loaded on request (it is the
   * biggest thing here), newest first, a page at a time, and its chain verified on request. */
  private auditPanel(org: OrgDetails): HTMLElement {
    const panel = el('div', { class: 'org-audit' });
    const show = el('button', { type: 'button', class: 'small' }, 'Show audit log');
    const verify = el('button', { type: 'button', class: 'small' }, 'Verify chain');
    const older = el('button', { type: 'button', class: 'small' }, 'Older entries');
    older.hidden = true;
    const table = el('table', { class: 'machines', 'aria-label': 'Audit log' });
    const head = el('tr');
    for (const title of ['When (UTC)', 'Who', 'What', 'Details', 'From']) {
      head.append(el('th', { scope: 'col' }, title));
    }
    const body = el('tbody');
    table.append(el('thead'), body);
    table.querySelector('thead')?.append(head);
    table.hidden = true;
    let cursor: number | null = null;
    const load = async (next?: number): Promise<void> => {
      const page = await api.orgAudit(org.slug, next);
      if (next === undefined) body.replaceChildren();
      for (const entry of page.entries) {
        const row = el('tr');
        for (const cell of auditRow(entry)) row.append(el('td', {}, cell));
        body.append(row);
      }
      cursor = page.next_cursor;
      older.hidden = cursor === null;
      table.hidden = false;
    };
    show.addEventListener('click', () => void this.busy(show, () => load()));
    older.addEventListener('click', () =>
      void this.busy(older, () => load(cursor ?? undefined)));
    verify.addEventListener('click', () => void this.busy(verify, async () => {
      const result = await api.verifyOrgAudit(org.slug);
      this.notify(result.ok
        ? `The audit chain verifies (${result.entries} entries).`
        : `The audit chain is broken at entry ${result.broken_seq}: ${result.reason}.`,
      result.ok ? 'info' : 'error');
    }));
    panel.append(el('h3', {}, 'Audit log'), el('p', { class: 'hint' },
      'Who did what to the organization and on its machines.'), show, verify, table, older);
    return panel;
  }

  /** The organization's key, for its managers: the master password that grants, removes
   * holders and rotates (their own; it opens their copy), and a pending rotation. */
  private keyPanel(org: OrgDetails, key: OrgKeyStatus): HTMLElement {
    const panel = el('div', { class: 'org-key' });
    panel.append(el('h3', {}, 'Shared key'), el('p', { class: 'hint' }, key.generation === null
      ? 'Made with the organization\'s first machine.'
      : `Generation ${key.generation}; held by ${key.holders.join(', ') || 'nobody'}. `
        + 'Members connect once granted; joining does not grant it.'));
    const password = el('input', { id: 'org-key-password', type: 'password',
      autocomplete: 'current-password' });
    panel.append(el('label', { for: 'org-key-password' },
      'Your master password (to grant, to remove a key holder, to rotate)'), password);
    if (key.rotation_pending) {
      const rotate = el('button', { type: 'button', class: 'small' }, 'Rotate key');
      rotate.addEventListener('click', () => void this.busy(rotate, async () => {
        const done = await api.rotateOrgKey(org.slug, this.keyPassword());
        this.notify(`Key rotated (generation ${done.generation}): ${done.resealed} machines `
          + 're-sealed.', 'info');
        await this.showOrg();
      }));
      panel.append(el('p', { class: 'hint' },
        'Someone who left still holds the previous key: rotate it.'), rotate);
    }
    return panel;
  }

  private keyPassword(): string {
    const input = this.root.querySelector<HTMLInputElement>('#org-key-password');
    const value = input?.value ?? '';
    if (value === '') throw new Error('Type your master password first.');
    return value;
  }

  private membersTable(org: OrgDetails, key: OrgKeyStatus | null): HTMLElement {
    const table = el('table', { class: 'machines', 'aria-label': 'Members' });
    const head = el('tr');
    for (const title of ['Member', 'Role', 'Since']) head.append(el('th', { scope: 'col' }, title));
    head.append(el('th', { scope: 'col' }));
    const body = el('tbody');
    for (const m of org.members) {
      const row = el('tr');
      const actions = el('td');
      const roles = assignableRoles(org.role, m.role);
      if (roles.length > 0) {
        const select = el('select', { 'aria-label': `Role of ${m.member}` });
        for (const role of roles) {
          const option = el('option', { value: role }, role);
          option.selected = role === m.role;
          select.append(option);
        }
        select.addEventListener('change', () => void this.busy(null, async () => {
          await api.setRole(org.slug, m.member, select.value as OrgRole);
          this.notify(`${m.member} is now ${select.value}.`, 'info');
          await this.showOrg();
        }));
        actions.append(select);
      }
      if (grantable(org, key).includes(m.member)) {
        const grant = el('button', { type: 'button', class: 'small',
          'aria-label': `Grant access to ${m.member}` }, 'Grant access');
        grant.addEventListener('click', () => void this.busy(grant, async () => {
          await api.grantOrgKey(org.slug, m.member, this.keyPassword());
          this.notify(`${m.member} can now connect to the organization's machines.`, 'info');
          await this.showOrg();
        }));
        actions.append(grant);
      }
      const mine = m.member === this.whoami();
      if (roles.length > 0 || mine) {
        const remove = el('button', { type: 'button', class: 'small secondary',
          'aria-label': mine ? `Leave ${org.name}` : `Remove ${m.member}` }, mine ? 'Leave' : 'Remove');
        const holder = !mine && (key?.holders.includes(m.member) ?? false);
        remove.addEventListener('click', () => void this.busy(remove, async () => {
          await api.removeMember(org.slug, m.member, holder ? this.keyPassword() : undefined);
          this.notify(mine ? `You left "${org.name}".` : `${m.member} removed.`, 'info');
          await this.refresh();
        }));
        actions.append(remove);
      }
      row.append(el('td', {}, m.member), el('td', {}, m.role),
        el('td', {}, new Date(m.since * 1000).toLocaleDateString()), actions);
      body.append(row);
    }
    table.append(el('thead'), body);
    table.tHead?.append(head);
    return table;
  }

  private invitations(org: OrgDetails): HTMLElement {
    const section = el('div');
    section.append(el('h3', {}, 'Pending invitations'));
    const list = el('ul', { class: 'org-invitations' });
    for (const invitation of org.invitations ?? []) {
      const item = el('li', {}, `${invitation.email} as ${invitation.role} `);
      const withdraw = el('button', { type: 'button', class: 'small secondary',
        'aria-label': `Withdraw the invitation of ${invitation.email}` }, 'Withdraw');
      withdraw.addEventListener('click', () => void this.busy(withdraw, async () => {
        await api.withdrawInvitation(org.slug, invitation.email);
        await this.showOrg();
      }));
      item.append(withdraw);
      list.append(item);
    }
    if ((org.invitations ?? []).length === 0) list.append(el('li', {}, 'None.'));
    section.append(list);
    return section;
  }

  private inviteForm(org: OrgDetails): HTMLElement {
    const form = el('form', { class: 'org-invite', autocomplete: 'off' });
    const email = el('input', { id: 'org-invite-email', type: 'email', required: '',
      maxlength: '254' });
    const role = el('select', { id: 'org-invite-role' });
    for (const r of assignableRoles(org.role, null)) {
      const option = el('option', { value: r }, r);
      option.selected = r === 'member';
      role.append(option);
    }
    const submit = el('button', { type: 'submit' }, 'Invite');
    form.append(el('h3', {}, 'Invite someone'),
      el('label', { for: 'org-invite-email' }, 'Email to invite'), email,
      el('label', { for: 'org-invite-role' }, 'Role'), role, submit);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      void this.busy(submit, async () => {
        const invitation = await api.invite(org.slug, email.value.trim(), role.value as OrgRole);
        this.notify(`Invitation sent to ${invitation.email}: they accept it after signing in `
          + 'with that email.', 'info');
        await this.showOrg();
      });
    });
    return form;
  }

  private part(id: string): HTMLElement {
    const found = this.root.querySelector<HTMLElement>(`#${id}`);
    if (!found) throw new Error(`missing #${id}`);
    return found;
  }
}
