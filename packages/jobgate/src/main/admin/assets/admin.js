// @ts-check
// The dashboard's only script: small, generic, no build step, no dependencies, and no renderer.
// The server renders every page (main/admin/pages/*.ts); this script
// - keeps a page live: every 2 s it fetches the page again and swaps each region marked
//   `data-live="name"` whose HTML changed (GoodJob's live poll), so what the page shows is always
//   what the server rendered;
// - runs what buttons and forms declare (main/admin/html.ts `act`): `data-api="METHOD path"` with
//   the session's CSRF token, `data-confirm`, `data-prompt`, `data-done` (the message),
//   `data-go` (where to go after); and fills a form from `data-fill` (the schedule editor).
// Type-checked by tsconfig.json beside it (DOM types), not by the root one (Node types).

const POLL_MS = 2000;
const csrf = document.querySelector('meta[name="csrf-token"]')?.getAttribute('content') ?? '';

/** @param {string} message @param {boolean} [isError] */
function flash(message, isError = false) {
  const el = document.getElementById('flash');
  if (!el) return;
  el.textContent = message;
  el.className = isError ? 'error' : '';
}

class LoggedOut extends Error {}

/** Off to the login page, coming back here after. */
function toLogin() {
  location.href = `login?next=${encodeURIComponent(location.pathname + location.search)}`;
  return new LoggedOut('logged out');
}

/**
 * Sends a request to `path` (relative to the admin's root, its <base>) as JSON with the CSRF token.
 * @param {string} method @param {string} path @param {unknown} [body]
 * @returns {Promise<unknown>} the JSON answer (null for 204)
 */
async function send(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { accept: 'application/json', 'x-csrf-token': csrf, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  if (res.status === 401) throw toLogin();
  const json = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) {
    const problem = /** @type {{ errors?: Array<{ path: string, message: string }>, detail?: string, title?: string } | null} */ (json);
    throw new Error(problem?.errors?.map((e) => `${e.path}: ${e.message}`).join('; ') || problem?.detail || problem?.title || res.statusText);
  }
  return json;
}

/**
 * The value at a dotted path (`retried.length`, `nextRuns.0`) of an answer.
 * @param {unknown} from @param {string} path @returns {unknown}
 */
function at(from, path) {
  /** @type {unknown} */
  let value = from;
  for (const key of path.split('.')) value = value !== null && value !== undefined ? /** @type {Record<string, unknown>} */ (value)[key] : undefined;
  return value;
}

/**
 * Fills a template from an answer: `{path}` is the value there, `{path?text}` the text when the value is set.
 * @param {string} template @param {unknown} answer
 */
const fill = (template, answer) =>
  template.replace(/\{([\w.]+)(\?([^}]*))?\}/g, (_, /** @type {string} */ path, cond, /** @type {string} */ text) => {
    const value = at(answer, path);
    const set = value !== undefined && value !== null && value !== false && value !== '' && value !== 0;
    return cond ? (set ? text : '') : set || value === 0 || value === false ? String(value) : '';
  });

// ---------------------------------------------------------------- live regions

/** Fetches this page again and puts each live region whose HTML changed in place of the one shown. */
async function swapRegions() {
  const res = await fetch(location.href, { headers: { accept: 'text/html' } });
  if (res.redirected && new URL(res.url).pathname.endsWith('/login')) throw toLogin();
  if (!(res.headers.get('content-type') ?? '').startsWith('text/html')) throw new Error(`${res.status} ${res.statusText}`);
  const fresh = new DOMParser().parseFromString(await res.text(), 'text/html');
  for (const region of fresh.querySelectorAll('[data-live]')) {
    const shown = document.querySelector(`[data-live="${CSS.escape(region.getAttribute('data-live') ?? '')}"]`);
    // unchanged regions stay as they are: focus, selection and what is typed into them too
    if (shown && !shown.isEqualNode(region)) shown.replaceWith(document.adoptNode(region));
  }
}

/** @type {Promise<void> | null} */
let inFlight = null;
let stale = false;
/** Refreshes the live regions; asked again while one runs (an action just changed something), once more after it. */
function refresh() {
  if (inFlight) {
    stale = true;
    return inFlight;
  }
  inFlight = (async () => {
    try {
      do {
        stale = false;
        await swapRegions();
      } while (stale);
    } finally {
      inFlight = null;
    }
  })();
  return inFlight;
}

/** Refreshes every POLL_MS, the first time after one interval: the server already painted the page. */
function poll() {
  const tick = async () => {
    try {
      await refresh();
    } catch (err) {
      if (!(err instanceof LoggedOut)) flash(`Could not refresh: ${/** @type {Error} */ (err).message}`, true);
    }
    setTimeout(tick, POLL_MS);
  };
  setTimeout(tick, POLL_MS);
}

// ---------------------------------------------------------------- actions

/**
 * A form's fields as a JSON body: checkboxes as booleans, numbers as numbers, `data-json` fields
 * parsed; empty fields and disabled ones left out.
 * @param {HTMLFormElement} form @returns {Record<string, unknown>}
 */
function fieldsOf(form) {
  /** @type {Record<string, unknown>} */
  const fields = {};
  for (const el of form.elements) {
    if (!(el instanceof HTMLInputElement || el instanceof HTMLSelectElement || el instanceof HTMLTextAreaElement) || !el.name || el.disabled) continue;
    if (el instanceof HTMLInputElement && el.type === 'checkbox') fields[el.name] = el.checked;
    else if (el.value === '') continue;
    else if (el instanceof HTMLInputElement && el.type === 'number') fields[el.name] = Number(el.value);
    else if (el.hasAttribute('data-json')) {
      try {
        fields[el.name] = JSON.parse(el.value);
      } catch (err) {
        throw new Error(`The ${el.name} is not JSON: ${/** @type {Error} */ (err).message}`);
      }
    } else fields[el.name] = el.value;
  }
  return fields;
}

/**
 * The request `data-api` declares (`METHOD path`), `{field}` in the path filled from `fields`; of
 * `A | B`, the first whose fields are all filled. `used` names the fields that went into the path.
 * @param {string} spec @param {Record<string, unknown>} fields
 * @returns {{ method: string, path: string, used: string[] }}
 */
function requestOf(spec, fields) {
  for (const choice of spec.split('|')) {
    const [method = 'POST', template = ''] = choice.trim().split(/\s+/);
    const used = [...template.matchAll(/\{(\w+)\}/g)].map((m) => /** @type {string} */ (m[1]));
    if (!used.every((n) => fields[n] !== undefined && fields[n] !== '')) continue;
    return { method, path: template.replace(/\{(\w+)\}/g, (_, /** @type {string} */ n) => encodeURIComponent(String(fields[n]))), used };
  }
  throw new Error(`Fill in the form first (${spec}).`);
}

/**
 * Runs what `el` declares; true when it was sent and answered.
 * @param {HTMLElement} el a button or a form with `data-api`
 * @param {Record<string, unknown>} fields a form's fields
 */
async function run(el, fields) {
  const d = el.dataset;
  if (d.confirm && !confirm(d.confirm)) return false;
  /** @type {Record<string, unknown>} */
  const body = { ...(d.body ? JSON.parse(d.body) : {}), ...fields };
  if (d.prompt && d.promptField) {
    const answer = prompt(d.prompt, d.promptSuggest ?? '');
    if (!answer) return false;
    body[d.promptField] = answer;
  }
  const { method, path, used } = requestOf(d.api ?? '', body);
  for (const name of used) delete body[name];
  if (d.pending) flash(d.pending);
  const answer = await send(method, path, d.body || Object.keys(body).length ? body : undefined);
  if (d.done) flash(fill(d.done, answer));
  if (d.go) location.href = fill(d.go, answer);
  else await refresh();
  return true;
}

/**
 * Puts `values` into a form (or empties it: `values` null), locking the fields named in `lock`.
 * @param {HTMLFormElement} form @param {Record<string, unknown> | null} values @param {string[]} lock @param {string | undefined} title
 */
function fillForm(form, values, lock, title) {
  form.reset();
  for (const el of form.elements) {
    if (!(el instanceof HTMLInputElement || el instanceof HTMLSelectElement || el instanceof HTMLTextAreaElement) || !el.name) continue;
    el.disabled = values !== null && lock.includes(el.name);
    if (el instanceof HTMLInputElement && el.type === 'hidden') el.value = '';
    const value = values?.[el.name];
    if (value === undefined) continue;
    if (el instanceof HTMLInputElement && el.type === 'checkbox') el.checked = Boolean(value);
    else el.value = String(value);
  }
  const heading = form.closest('section')?.querySelector('h2');
  if (heading) {
    heading.dataset.original ??= heading.textContent ?? '';
    heading.textContent = values && title ? title : heading.dataset.original;
  }
}

/** @param {HTMLElement} el @param {() => Promise<unknown>} work */
async function busy(el, work) {
  const controls = el instanceof HTMLFormElement ? [...el.querySelectorAll('button')] : [el];
  for (const c of controls) if (c instanceof HTMLButtonElement) c.disabled = true;
  try {
    await work();
  } catch (err) {
    if (!(err instanceof LoggedOut)) flash(/** @type {Error} */ (err).message, true);
  } finally {
    for (const c of controls) if (c instanceof HTMLButtonElement) c.disabled = false;
  }
}

// Listeners on the document, so buttons in regions the live refresh replaces keep working.
document.addEventListener('click', (e) => {
  const target = e.target instanceof Element ? e.target.closest('button') : null;
  if (!(target instanceof HTMLButtonElement) || target.type === 'submit') return;
  const d = target.dataset;
  // `data-fill` names a form to fill with `data-values` (or empty); with `data-api`, once that succeeded
  const fillIt = () => {
    const form = d.fill ? document.getElementById(d.fill) : null;
    if (form instanceof HTMLFormElement) fillForm(form, d.values ? JSON.parse(d.values) : null, (d.lock ?? '').split(' '), d.title);
  };
  if (d.api) void busy(target, async () => (await run(target, {})) && fillIt());
  else fillIt();
});
document.addEventListener('submit', (e) => {
  const form = e.target;
  if (!(form instanceof HTMLFormElement) || !form.dataset.api) return; // a plain form (the filters) goes to the server
  e.preventDefault();
  void busy(form, async () => {
    if (await run(form, fieldsOf(form))) fillForm(form, null, [], undefined);
  });
});

if (document.querySelector('[data-live]')) poll();

export {};
