// The webhooks console: a page that calls this service's public API with the user's own
// token, and nothing else. No framework, no build step, no outside asset (docs/console.md).
//
// Rules kept throughout:
// - the token lives in sessionStorage only (never a URL, a cookie or a log line);
// - everything the API returns is put on the page as text (textContent), never as HTML:
//   URLs and response excerpts come from receivers and users;
// - every error from the API is shown in words with its code: "<message> (<code>)";
// - every loop that polls is bounded.

const TOKEN_KEY = "webhooks-console-token";
// The API is this origin, under the same prefix as the page (".../console").
const API_BASE = window.location.pathname.replace(/\/console\/?$/, "");
const CHART_HOURS = 12;
const CHART_PAGE_SIZE = 1000;
const CHART_MAX_PAGES = 3; // at most 3 calls: the newest 3000 events of the window
const CONFIGS_PAGE_SIZE = 100;
const EVENTS_PAGE_SIZE = 20;
const TASKS_SHOWN = 5;
const ATTEMPTS_SHOWN = 10;
const WATCH_INTERVAL_MS = 1000;
const WATCH_TRIES = 45; // a test ends within 15 s on the service; stop watching after 45 s
const RATE_LIMIT_MAX = 10000;
const RECOVER_DAYS = 14; // the furthest back a recover reaches
const RECOVER_WATCH_TRIES = 120; // follow a recover for two minutes at most, then say so
const OVERLAPS = [
  [0, "no overlap (the old secret stops at once)"],
  [3600, "1 hour"],
  [86400, "1 day (the default)"],
  [604800, "7 days"],
];

// ---------------------------------------------------------------------------------------
// The API

class ApiError extends Error {
  constructor(status, code, message, params) {
    super(message);
    this.status = status;
    this.code = code;
    this.params = params || null;
  }
}

/** An answer that arrived after the session it was asked for ended (a logout, another login):
 * it is dropped, and nothing of it is shown or said. */
class Superseded extends Error {}

/** "<message> (<code>)", then what `params` says, field by field. */
function describe(error) {
  if (!(error instanceof ApiError)) {
    return `Something went wrong in the console: ${error && error.message ? error.message : error} (console-error)`;
  }
  let text = `${error.message} (${error.code})`;
  if (error.params && typeof error.params === "object") {
    const parts = Object.entries(error.params).map(([name, value]) =>
      `${name}: ${typeof value === "string" ? value : JSON.stringify(value)}`);
    if (parts.length) text += ` ${parts.join("; ")}`;
  }
  return text;
}

/** A route that this deployment does not have yet: the API's default route answers it. */
function isMissingRoute(error) {
  return error instanceof ApiError && error.status === 404 && error.code === "not-found"
    && /\broute\b/i.test(error.message);
}

async function api(method, path, { query, body, token } = {}) {
  const url = new URL(API_BASE + path, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  const generation = session.generation;
  const headers = { Authorization: `Token ${token || session.token}` };
  const init = { method, headers, cache: "no-store", credentials: "omit", redirect: "error", referrerPolicy: "no-referrer" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (failure) {
    throw new ApiError(0, "network-error", "The service could not be reached.");
  }
  let data = null;
  try {
    data = await response.json();
  } catch (unreadable) {
    data = null;
  }
  if (!token && generation !== session.generation) throw new Superseded("an answer for an ended session");
  if (!response.ok) {
    if (data && typeof data.error === "string" && typeof data.message === "string") {
      throw new ApiError(response.status, data.error, data.message, data.params);
    }
    const message = data && typeof data.message === "string" ? data.message : "The service answered with an error.";
    throw new ApiError(response.status, `HTTP ${response.status}`, message);
  }
  if (data === null) throw new ApiError(response.status, "invalid-response", "The service's answer was not JSON.");
  return data;
}

// ---------------------------------------------------------------------------------------
// State

const session = {
  token: null,
  generation: 0, // bumped at login and logout: a watcher of an older session stops
  key: null,
  organisation: null,
  configs: new Map(), // id -> config, in the order listed
  known: new Map(), // id -> config (or null: not found) for configs named but not listed: deactivated, older
  tasks: new Map(), // config id -> its newest tasks (when loaded)
  openTasks: new Set(), // config ids whose "recent tests" are open
  watching: new Set(),
  events: [],
  eventsHasMore: false,
  openAttempts: new Set(),
  attempts: new Map(), // event id -> attempts list, or an ApiError
  unavailable: { attempts: null, resend: null, rotate: null, recover: null }, // the API's answer when missing
};

// ---------------------------------------------------------------------------------------
// Small DOM helpers: text only, never HTML.

const $ = (selector) => document.querySelector(selector);

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A table cell that names its column, for the narrow layout where rows become blocks. */
function cell(label, attributes, ...children) {
  return el("td", { ...attributes, "data-label": label }, ...children);
}

function svg(tag, attributes, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) if (child) node.append(child);
  return node;
}

const STATE_STYLE = {
  valid: "ok", active: "ok", delivered: "ok", succeeded: "ok",
  invalid: "bad", failed: "bad",
  pending: "wait", processing: "wait", unconfigured: "wait",
  new: "new",
  deactivated: "off",
};

/** A state as a word on a colour: the word is the state, the colour repeats it. */
function badge(state) {
  return el("span", { class: `badge ${STATE_STYLE[state] || "off"}`, "data-state": state, text: state });
}

function when(iso) {
  if (!iso) return el("span", { text: "—" });
  const date = new Date(iso);
  return el("time", { datetime: iso, title: iso, text: Number.isNaN(date.getTime()) ? iso : date.toLocaleString() });
}

function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function say(text, kind = "info") {
  const box = $("#status");
  box.replaceChildren(el("p", { class: kind, text }));
  keepRoomForStatus();
}

/** The status line sits at the foot of the window: the page keeps as much room below its end
 * (and keyboard focus scrolls clear of it), so it covers nothing that cannot be scrolled past. */
function keepRoomForStatus() {
  const height = $("#status").offsetHeight;
  document.documentElement.style.setProperty("--status-room", `${height}px`);
}

function fail(error, doing) {
  if (error instanceof Superseded) return;
  if (error instanceof ApiError && error.status === 401) {
    logout(`${doing}: ${describe(error)}. Log in again with a valid token.`, "error");
    return;
  }
  say(`${doing}: ${describe(error)}`, "error");
}

const sleep = (ms) => new Promise((resolve) => { window.setTimeout(resolve, ms); });

/** Re-render, keeping what the user had open (details marked data-keep) and keyboard focus
 * on "the same" control (marked data-focus). */
function keepingFocus(render) {
  const active = document.activeElement;
  const key = active && active.dataset ? active.dataset.focus : null;
  const open = [...document.querySelectorAll("details[open][data-keep]")].map((node) => node.dataset.keep);
  render();
  for (const keep of open) {
    const again = document.querySelector(`details[data-keep="${CSS.escape(keep)}"]`);
    if (again) again.open = true;
  }
  if (key) {
    const again = document.querySelector(`[data-focus="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}

// ---------------------------------------------------------------------------------------
// Login and logout

async function login(event) {
  event.preventDefault();
  const input = $("#token");
  const token = input.value.trim();
  if (!token) {
    say("Enter an API token first.", "error");
    input.focus();
    return;
  }
  say("Checking the token…");
  try {
    const key = await api("GET", "/key", { token });
    sessionStorage.setItem(TOKEN_KEY, token);
    input.value = "";
    await start(token, key);
  } catch (error) {
    input.value = "";
    say(`The token was refused: ${describe(error)}`, "error");
    input.focus();
  }
}

function logout(message = "Logged out: the token is gone from this tab.", kind = "ok") {
  sessionStorage.removeItem(TOKEN_KEY);
  session.token = null;
  session.generation += 1;
  session.key = null;
  session.organisation = null;
  session.configs.clear();
  session.known.clear();
  session.tasks.clear();
  session.openTasks.clear();
  session.watching.clear();
  session.events = [];
  session.openAttempts.clear();
  session.attempts.clear();
  $("#app").hidden = true;
  $("#logout").hidden = true;
  $("#who").hidden = true;
  $("#who").textContent = "";
  $("#org").replaceChildren();
  $("#configs").replaceChildren();
  $("#events tbody").replaceChildren();
  $("#chart").replaceChildren();
  $("#login").hidden = false;
  say(message, kind);
  $("#token").focus();
}

async function start(token, key) {
  session.token = token;
  session.generation += 1;
  session.key = key;
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#logout").hidden = false;
  $("#who").hidden = false;
  $("#who").textContent = `Key ${key.id}`;
  say("Loading…");
  await refreshAll();
  $("#main").focus();
}

async function refreshAll() {
  const generation = session.generation;
  const results = await Promise.allSettled([loadOrganisation(), loadConfigs(), loadEvents(), loadChart()]);
  if (generation !== session.generation) return;
  const failed = results.find((result) => result.status === "rejected");
  if (failed) fail(failed.reason, "Loading the console");
  else say(`Loaded at ${new Date().toLocaleTimeString()}.`, "ok");
}

// ---------------------------------------------------------------------------------------
// The organisation

async function loadOrganisation() {
  const [organisation, key] = await Promise.all([api("GET", "/organisation"), api("GET", "/key")]);
  session.organisation = organisation;
  session.key = key;
  await knowConfigs([organisation.webhook_config_default, key.webhook_config]);
  renderOrganisation();
}

function configById(id) {
  return session.configs.get(id) || session.known.get(id) || null;
}

/** Read the configs named here that the lists did not bring (a deactivated default, the
 * config an old event went to), at most one request each, so that every config is shown by
 * its URL and state, never by a bare id. */
async function knowConfigs(ids) {
  const missing = [...new Set(ids.filter((id) => id && !session.configs.has(id) && !session.known.has(id)))];
  await Promise.all(missing.map(async (id) => {
    try {
      session.known.set(id, await api("GET", `/configs/webhook/${id}`));
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 404) throw error;
      session.known.set(id, null);
    }
  }));
}

function configLabel(id) {
  if (!id) return "none";
  const config = configById(id);
  return config ? config.url : "a config that cannot be read";
}

/** A config as people know it: its URL (its id as a tooltip), and its state unless valid. */
function configName(id) {
  const config = configById(id);
  return [el("span", { class: "mono", title: id, text: configLabel(id) }),
    config && config.state !== "valid" ? [" ", badge(config.state)] : null];
}

const UNROUTED = {
  new: "events fail unconfigured until its test succeeds",
  invalid: "events fail unconfigured until a test of it succeeds",
  deactivated: "events fail unconfigured until another config is the default",
};

function renderOrganisation() {
  const org = session.organisation;
  if (!org) return;
  $("#who").textContent = `Key ${session.key.id} · ${org.name}`;
  const defaultId = org.webhook_config_default;
  const defaultConfig = configById(defaultId);
  const keyConfigId = session.key.webhook_config;
  const keyConfig = configById(keyConfigId);
  const rows = [
    ["Name", org.name],
    ["Id", el("code", { text: org.id })],
    ["State", [badge(org.state), " ",
      el("span", { class: "help", text: org.state === "active" ? "at least one config is valid" : "no config is valid yet" })]],
    ["Default config", defaultId
      ? [configName(defaultId), defaultConfig && UNROUTED[defaultConfig.state]
        ? [" ", el("span", { class: "help", text: `(${UNROUTED[defaultConfig.state]})` })] : null]
      : "none (events fail unconfigured unless their key names a config)", "default"],
    ["This key's config", keyConfigId
      ? [configName(keyConfigId), " ",
        el("span", { class: "help", text: keyConfig && keyConfig.state === "valid"
          ? "(events published with this key go here, not to the default)"
          : "(events published with this key fail unconfigured until it is valid)" }), " ",
        el("button", { type: "button", class: "quiet small", "data-focus": "key-config-clear",
          onclick: () => setKeyConfig(null), text: "Clear" })]
      : "none (events published with this key go to the organisation's default)", "key-config"],
    ["Configs", `${org.webhook_configs ? org.webhook_configs.total_count : 0} not deactivated`],
    ["Created", when(org.date_created)],
  ];
  $("#org").replaceChildren(...rows.flatMap(([term, value, fact]) =>
    [el("dt", { text: term }), el("dd", { "data-fact": fact }, value)]));
}

// ---------------------------------------------------------------------------------------
// Configs

async function loadConfigs() {
  const lists = [api("GET", "/configs/webhook", { query: { limit: CONFIGS_PAGE_SIZE } })];
  if ($("#show-deactivated").checked) {
    lists.push(api("GET", "/configs/webhook", { query: { limit: CONFIGS_PAGE_SIZE, state: "deactivated" } }));
  }
  const pages = await Promise.all(lists);
  const configs = pages.flatMap((page) => page.data);
  configs.sort((a, b) => (a.date_created < b.date_created ? 1 : -1));
  session.configs = new Map(configs.map((config) => [config.id, config]));
  keepingFocus(renderConfigs);
  renderOrganisation();
  for (const id of session.openTasks) if (session.configs.has(id)) loadTasks(id);
  for (const config of configs) if (config.state === "new") watch(config.id);
}

function renderConfigs() {
  const list = $("#configs");
  if (session.configs.size === 0) {
    list.replaceChildren(el("li", { class: "help", text: "No configs yet: create one above." }));
    return;
  }
  list.replaceChildren(...[...session.configs.values()].map(configCard));
}

function configCard(config) {
  const isDefault = session.organisation && session.organisation.webhook_config_default === config.id;
  const isKeys = session.key && session.key.webhook_config === config.id;
  const off = config.state === "deactivated";
  const focus = (action) => `${action}:${config.id}`;
  const title = `config-${config.id}`;
  const secret = el("details", { class: "secret-box", "data-keep": `secret:${config.id}` },
    el("summary", { text: "Signing secret" }),
    el("p", { class: "secret" }, el("code", { "data-secret": config.id, text: config.secret || "—" })),
    config.previous_secret_expires
      ? el("p", { class: "help" }, "The previous secret still signs until ", when(config.previous_secret_expires), ".")
      : null);

  const actions = el("div", { class: "actions" },
    off ? null : el("button", { type: "button", "data-focus": focus("test"), "aria-describedby": title,
      onclick: () => testConfig(config.id), text: "Test now" }),
    off || isDefault ? null : el("button", { type: "button", class: "quiet", "data-focus": focus("default"),
      "aria-describedby": title, onclick: () => makeDefault(config.id), text: "Make default" }),
    off || isKeys ? null : el("button", { type: "button", class: "quiet", "data-focus": focus("key"),
      "aria-describedby": title, onclick: () => setKeyConfig(config.id), text: "Use for this key" }),
    off ? null : el("button", { type: "button", class: "danger", "data-focus": focus("deactivate"),
      "aria-describedby": title, onclick: () => deactivate(config.id), text: "Deactivate" }));

  const rotate = off ? null : rotateBox(config);
  const delivery = off ? null : deliveryBox(config);
  const tasks = el("details", { class: "tasks", "data-tasks": config.id, open: session.openTasks.has(config.id) },
    el("summary", { "data-focus": focus("tasks"), text: "Recent tests and recovers" }),
    tasksTable(config.id));
  tasks.addEventListener("toggle", () => {
    // Also fired for a card re-rendered open: its tests are already loaded then.
    if (tasks.open && !session.openTasks.has(config.id)) {
      session.openTasks.add(config.id);
      loadTasks(config.id);
    } else if (!tasks.open) {
      session.openTasks.delete(config.id);
    }
  });

  return el("li", { class: `card ${STATE_STYLE[config.state] || "off"}`, "data-config": config.id },
    el("h3", { id: title }, badge(config.state), el("span", { class: "url", text: config.url })),
    el("p", { class: "meta" },
      isDefault ? el("strong", { text: "Organisation default · " }) : null,
      isKeys ? el("strong", { text: "This key's config · " }) : null,
      "created ", when(config.date_created), " · id ", el("code", { text: config.id })),
    actions, secret, rotate, delivery, tasks);
}

/** The config's delivery rate (shown and edited) and "recover failed events since …". The
 * forms do not use the browser's own validation: what is wrong is said on the status line. */
function deliveryBox(config) {
  const rateId = `rate-${config.id}`;
  const sinceId = `since-${config.id}`;
  const rate = el("input", { id: rateId, type: "number", min: 1, max: RATE_LIMIT_MAX, step: 1, inputmode: "numeric",
    placeholder: "no limit", value: config.rate_limit ?? "" });
  const since = el("input", { id: sinceId, type: "datetime-local", value: localInput(Date.now() - 86400000) });
  const missing = session.unavailable.recover;
  const shown = config.rate_limit ? `at most ${config.rate_limit} a second` : "no limit";
  return el("details", { class: "delivery-box", "data-keep": `delivery:${config.id}` },
    el("summary", { "data-focus": `delivery-open:${config.id}`, text: `Delivery rate (${shown}) and recovery` }),
    el("form", { class: "rotate", novalidate: true, onsubmit: (event) => { event.preventDefault(); setRateLimit(config.id, rate.value); } },
      el("label", { for: rateId, text: "Deliveries a second, at most" }), rate,
      el("button", { type: "submit", class: "quiet", "data-focus": `rate:${config.id}`, text: "Save rate" })),
    el("p", { class: "help", text: "Empty means no limit. Deliveries above the rate wait their turn; none is dropped or counted as a failed attempt." }),
    el("form", { class: "rotate", novalidate: true, onsubmit: (event) => { event.preventDefault(); recover(config.id, since.value); } },
      el("label", { for: sinceId, text: "Recover failed events since" }), since,
      el("button", { type: "submit", class: "quiet", "data-focus": `recover:${config.id}`, disabled: Boolean(missing),
        text: "Recover" })),
    missing ? el("p", { class: "note unavailable", text: unavailableText("Recovering failed events is", missing) }) : null);
}

/** A time as a datetime-local input holds it: the browser's local time, to the minute. */
function localInput(ms) {
  const date = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function rotateBox(config) {
  const selectId = `overlap-${config.id}`;
  const select = el("select", { id: selectId },
    ...OVERLAPS.map(([seconds, label]) => el("option", { value: seconds, selected: seconds === 86400, text: label })));
  const missing = session.unavailable.rotate;
  return el("details", { class: "rotate-box", "data-keep": `rotate:${config.id}` },
    el("summary", { "data-focus": `rotate-open:${config.id}`, text: "Rotate secret" }),
    el("div", { class: "rotate" },
      el("label", { for: selectId, text: "Old secret keeps signing for" }), select,
      el("button", { type: "button", class: "quiet", "data-focus": `rotate:${config.id}`, disabled: Boolean(missing),
        onclick: () => rotateSecret(config.id, Number(select.value)), text: "Rotate now" })),
    missing ? el("p", { class: "note unavailable", text: unavailableText("Secret rotation is", missing) }) : null);
}

/** `what` is the subject with its verb: "Secret rotation is", "Delivery attempts are". */
function unavailableText(what, error) {
  return `${what} not available on this service yet: ${describe(error)}`;
}

async function createConfig(event) {
  event.preventDefault();
  const input = $("#create-url");
  const url = input.value.trim();
  if (!url) {
    say("Enter the receiver's URL first.", "error");
    input.focus();
    return;
  }
  say("Creating the config…");
  try {
    const config = await api("POST", "/configs/webhook", { body: { url } });
    input.value = "";
    session.configs = new Map([[config.id, config], ...session.configs]);
    renderConfigs();
    say(`Created the config for ${config.url} (state ${config.state}); its test is on its way.`, "ok");
    loadOrganisation().catch((error) => fail(error, "Reading the organisation"));
    watch(config.id);
  } catch (error) {
    fail(error, "Creating the config");
  }
}

async function testConfig(id) {
  say("Queueing a test…");
  try {
    const task = await api("POST", `/configs/webhook/${id}/test`);
    say(`Test queued (task ${task.id}, ${task.state}).`, "ok");
    watch(id);
  } catch (error) {
    fail(error, "Testing the config");
  }
}

async function makeDefault(id) {
  try {
    session.organisation = await api("POST", "/organisation", { body: { webhook_config_default: id } });
    renderOrganisation();
    keepingFocus(renderConfigs);
    say(`The organisation's default config is now ${configLabel(id)}.`, "ok");
  } catch (error) {
    fail(error, "Setting the default config");
  }
}

async function setKeyConfig(id) {
  try {
    session.key = await api("POST", `/keys/${session.key.id}`, { body: { webhook_config: id } });
    renderOrganisation();
    keepingFocus(renderConfigs);
    say(id ? `Events published with this key now go to ${configLabel(id)}, not to the organisation's default.`
      : "This key has no config of its own: its events go to the organisation's default.", "ok");
  } catch (error) {
    fail(error, id ? "Setting this key's config" : "Clearing this key's config");
  }
}

async function deactivate(id) {
  const config = session.configs.get(id);
  if (!window.confirm(`Deactivate the config for ${config ? config.url : id}? It stops receiving events (it is kept, and can be made new again through the API).`)) {
    return;
  }
  try {
    const updated = await api("DELETE", `/configs/webhook/${id}`);
    session.configs.set(id, updated);
    keepingFocus(renderConfigs);
    say(`Deactivated the config for ${updated.url}.`, "ok");
    loadOrganisation().catch((error) => fail(error, "Reading the organisation"));
  } catch (error) {
    fail(error, "Deactivating the config");
  }
}

async function rotateSecret(id, overlapSeconds) {
  const config = session.configs.get(id);
  const overlap = OVERLAPS.find(([seconds]) => seconds === overlapSeconds);
  if (!window.confirm(`Make a new signing secret for ${config ? config.url : id}? The old one keeps signing for ${overlap ? overlap[1] : `${overlapSeconds} s`}.`)) {
    return;
  }
  try {
    const updated = await api("POST", `/configs/webhook/${id}/rotate_secret`, { body: { overlap_seconds: overlapSeconds } });
    session.configs.set(id, updated);
    keepingFocus(renderConfigs);
    const card = document.querySelector(`[data-config="${CSS.escape(id)}"] .secret-box`);
    if (card) card.open = true;
    const until = updated.previous_secret_expires
      ? `the old one keeps signing until ${new Date(updated.previous_secret_expires).toLocaleString()}`
      : "the old one no longer signs";
    say(`New signing secret made for ${updated.url}; ${until}.`, "ok");
  } catch (error) {
    if (isMissingRoute(error)) {
      session.unavailable.rotate = error;
      keepingFocus(renderConfigs);
      say(unavailableText("Secret rotation is", error), "error");
      return;
    }
    fail(error, "Rotating the secret");
  }
}

async function setRateLimit(id, text) {
  const value = text.trim() === "" ? null : Number(text);
  if (value !== null && !(Number.isInteger(value) && value >= 1 && value <= RATE_LIMIT_MAX)) {
    say(`The rate is a whole number of deliveries a second from 1 to ${RATE_LIMIT_MAX}, or empty for no limit.`, "error");
    return;
  }
  try {
    const updated = await api("POST", `/configs/webhook/${id}`, { body: { rate_limit: value } });
    session.configs.set(id, updated);
    keepingFocus(renderConfigs);
    say(value === null ? `Deliveries to ${updated.url} are no longer paced.`
      : `Deliveries to ${updated.url} are paced at ${updated.rate_limit} a second at most.`, "ok");
  } catch (error) {
    fail(error, "Setting the delivery rate");
  }
}

async function recover(id, localSince) {
  const since = new Date(localSince);
  if (Number.isNaN(since.getTime())) {
    say("Choose when the failed events to recover start.", "error");
    return;
  }
  if (since.getTime() < Date.now() - RECOVER_DAYS * 86400000) {
    say(`A recover reaches ${RECOVER_DAYS} days back at most.`, "error");
    return;
  }
  const config = session.configs.get(id);
  if (!window.confirm(`Resend every failed event of ${config ? config.url : id} created since ${since.toLocaleString()}?`)) {
    return;
  }
  try {
    const task = await api("POST", `/configs/webhook/${id}/recover`, { body: { since: since.toISOString() } });
    say(`Recovering the failed events of ${configLabel(id)} since ${since.toLocaleString()} (task ${task.id}).`, "ok");
    followRecover(id, task.id);
  } catch (error) {
    if (isMissingRoute(error)) {
      session.unavailable.recover = error;
      keepingFocus(renderConfigs);
      say(unavailableText("Recovering failed events is", error), "error");
      return;
    }
    fail(error, "Recovering the failed events");
  }
}

function recoverProgress(task) {
  const result = task.result || {};
  return `found ${result.found ?? 0}, resent ${result.resent ?? 0}`;
}

/** Poll a recover task until it ends (bounded), saying how far it got. */
async function followRecover(id, taskId) {
  const generation = session.generation;
  try {
    for (let attempt = 0; attempt < RECOVER_WATCH_TRIES; attempt += 1) {
      await sleep(WATCH_INTERVAL_MS);
      if (generation !== session.generation) return;
      const task = await api("GET", `/tasks/${taskId}`);
      if (generation !== session.generation) return;
      if (task.state === "succeeded" || task.state === "failed") {
        say(`The recover of ${configLabel(id)} ${task.state}: ${recoverProgress(task)}.`, task.state === "succeeded" ? "ok" : "error");
        if (session.openTasks.has(id)) loadTasks(id);
        loadEvents().catch((error) => fail(error, "Reading the events"));
        return;
      }
    }
    if (generation === session.generation) {
      say(`The recover of ${configLabel(id)} is still running; its task ${taskId} says how far it got.`);
    }
  } catch (error) {
    if (generation === session.generation) fail(error, "Following the recover");
  }
}

/** Poll one config and its newest test until that test ends (bounded), then show the outcome. */
async function watch(id) {
  if (session.watching.has(id)) return;
  session.watching.add(id);
  const generation = session.generation;
  try {
    for (let attempt = 0; attempt < WATCH_TRIES; attempt += 1) {
      await sleep(WATCH_INTERVAL_MS);
      if (generation !== session.generation) return;
      const [config, tasks] = await Promise.all([
        api("GET", `/configs/webhook/${id}`),
        api("GET", "/tasks", { query: { target: id, limit: TASKS_SHOWN } }),
      ]);
      if (generation !== session.generation) return;
      session.configs.set(id, config);
      session.tasks.set(id, tasks.data);
      const newest = tasks.data.find(isTest); // a recover of the config is listed with its tests
      if (newest && (newest.state === "succeeded" || newest.state === "failed")) {
        keepingFocus(renderConfigs);
        say(testOutcome(config, newest), newest.state === "succeeded" ? "ok" : "error");
        loadOrganisation().catch((error) => fail(error, "Reading the organisation"));
        loadEvents().catch((error) => fail(error, "Reading the events"));
        loadChart().catch((error) => fail(error, "Reading the chart's events"));
        return;
      }
    }
    if (generation === session.generation) {
      keepingFocus(renderConfigs);
      say(`The test of ${configLabel(id)} has not ended yet; use Refresh all to look again.`);
    }
  } catch (error) {
    if (generation === session.generation) fail(error, "Following the test");
  } finally {
    session.watching.delete(id);
  }
}

const isTest = (task) => task.type === "webhook_config.test";

function testOutcome(config, task) {
  const result = task.result || {};
  const status = result.status_code === null || result.status_code === undefined ? "no status" : `status ${result.status_code}`;
  const how = task.error ? `${task.error}, ${status}` : status;
  return `The config for ${config.url} is ${config.state}: its test ${task.state} (${how}, ${duration(result.duration_ms)}).`;
}

async function loadTasks(id) {
  try {
    const page = await api("GET", "/tasks", { query: { target: id, limit: TASKS_SHOWN } });
    session.tasks.set(id, page.data);
  } catch (error) {
    if (error instanceof Superseded) return;
    session.tasks.set(id, error);
  }
  const box = document.querySelector(`[data-tasks="${CSS.escape(id)}"]`);
  if (box) box.replaceChildren(box.querySelector("summary"), tasksTable(id));
}

function tasksTable(id) {
  const tasks = session.tasks.get(id);
  if (tasks === undefined) return el("p", { class: "help", text: "Loading…" });
  if (tasks instanceof ApiError) return el("p", { class: "note error", text: `Could not read the tests: ${describe(tasks)}` });
  if (tasks.length === 0) return el("p", { class: "help", text: "No tests yet." });
  return el("div", { class: "scroll" }, el("table", { class: "tasks-table stack" },
    el("caption", { class: "visually-hidden", text: "The newest tests of this config" }),
    el("thead", {}, el("tr", {}, ...["Created", "State", "Status code", "Duration", "Error", "Response excerpt"]
      .map((name) => el("th", { scope: "col", class: name === "Status code" || name === "Duration" ? "num" : null, text: name })))),
    el("tbody", {}, ...tasks.map((task) => {
      const result = task.result || {};
      const test = isTest(task);
      return el("tr", { "data-task": task.id },
        cell("Created", {}, when(task.date_created)),
        cell("State", {}, badge(task.state)),
        cell("Status code", { class: "num", "data-field": "status_code", text: test ? result.status_code ?? "—" : "—" }),
        cell("Duration", { class: "num", "data-field": "duration", text: test ? duration(result.duration_ms) : "—" }),
        cell("Error", { "data-field": "error", text: task.error || "—" }),
        cell("Response excerpt", { class: "excerpt", "data-field": "excerpt",
          text: test ? result.response_excerpt || "—" : `Recover: ${recoverProgress(task)}` }));
    }))));
}

// ---------------------------------------------------------------------------------------
// Events and their attempts

function eventQuery() {
  return { limit: EVENTS_PAGE_SIZE, type: $("#events-type").value.trim(), state: $("#events-state").value };
}

async function loadEvents(more = false) {
  const query = eventQuery();
  if (more && session.events.length) query.after_id = session.events[session.events.length - 1].id;
  const page = await api("GET", "/events", { query });
  await knowConfigs(page.data.map((event) => event.webhook_config));
  session.events = more ? [...session.events, ...page.data] : page.data;
  session.eventsHasMore = page.has_more;
  keepingFocus(renderEvents);
  for (const id of session.openAttempts) loadAttempts(id);
}

const isTestEvent = (event) => event.type === "webhook_config" && event.action === "test";
const hasEnded = (event) => event.state === "delivered" || event.state === "failed";

function renderEvents() {
  const body = $("#events tbody");
  body.replaceChildren(...session.events.flatMap(eventRows));
  $("#events-empty").hidden = session.events.length > 0;
  $("#events-more").hidden = !session.eventsHasMore;
}

function eventRows(event) {
  const open = session.openAttempts.has(event.id);
  const detailId = `attempts-${event.id}`;
  const resendable = hasEnded(event) && !isTestEvent(event);
  const row = el("tr", { "data-event": event.id },
    cell("Created", {}, when(event.date_created)),
    cell("Event", {}, el("span", { class: "mono", text: `${event.type}.${event.action}` }), " ",
      el("code", { class: "help", text: event.id })),
    cell("State", {}, badge(event.state), event.error ? [" ", el("span", { class: "mono", text: event.error })] : null),
    cell("Retries", { class: "num", text: String(event.retries) }),
    cell("Config", {}, event.webhook_config ? configName(event.webhook_config) : "—"),
    cell("Actions", {}, el("div", { class: "actions" },
      el("button", { type: "button", class: "quiet", "aria-expanded": String(open), "aria-controls": detailId,
        "data-focus": `attempts:${event.id}`, onclick: () => toggleAttempts(event.id), text: open ? "Hide attempts" : "Attempts" }),
      resendable ? el("button", { type: "button", class: "quiet", "data-focus": `resend:${event.id}`,
        onclick: () => resend(event.id), text: "Resend" }) : null)));
  const detail = el("tr", { class: "detail", id: detailId, hidden: !open },
    el("td", { colspan: 6 }, open ? attemptsView(event.id) : null));
  return [row, detail];
}

function toggleAttempts(id) {
  if (session.openAttempts.has(id)) session.openAttempts.delete(id);
  else {
    session.openAttempts.add(id);
    loadAttempts(id);
  }
  keepingFocus(renderEvents);
}

async function loadAttempts(id) {
  if (session.unavailable.attempts) {
    session.attempts.set(id, session.unavailable.attempts);
  } else {
    try {
      const page = await api("GET", `/events/${id}/attempts`, { query: { limit: ATTEMPTS_SHOWN } });
      session.attempts.set(id, page);
    } catch (error) {
      if (error instanceof Superseded) return;
      if (isMissingRoute(error)) session.unavailable.attempts = error;
      session.attempts.set(id, error);
    }
  }
  const cell = document.querySelector(`#attempts-${CSS.escape(id)} td`);
  if (cell && session.openAttempts.has(id)) cell.replaceChildren(attemptsView(id));
}

function attemptsView(id) {
  const found = session.attempts.get(id);
  if (found === undefined) return el("p", { class: "help", text: "Loading the attempts…" });
  if (found instanceof ApiError) {
    if (isMissingRoute(found)) return el("p", { class: "note unavailable", text: unavailableText("Delivery attempts are", found) });
    return el("p", { class: "note error", text: `Could not read the attempts: ${describe(found)}` });
  }
  if (found.data.length === 0) return el("p", { class: "help", text: "No attempt yet." });
  return el("div", { class: "scroll" }, el("table", { class: "attempts-table stack" },
    el("caption", { text: `Attempts, newest first (${found.data.length} of ${found.total_count})` }),
    el("thead", {}, el("tr", {}, ...["When", "Status code", "Error", "Duration", "URL", "Response excerpt"]
      .map((name) => el("th", { scope: "col", text: name })))),
    el("tbody", {}, ...found.data.map((attempt) => el("tr", { "data-attempt": attempt.id },
      cell("When", {}, when(attempt.date_created)),
      cell("Status code", { class: "num", "data-field": "status_code", text: attempt.status_code ?? "—" }),
      cell("Error", { "data-field": "error", text: attempt.error || "—" }),
      cell("Duration", { class: "num", text: duration(attempt.duration_ms) }),
      cell("URL", { class: "mono", text: attempt.url }),
      cell("Response excerpt", { class: "excerpt", "data-field": "excerpt", text: attempt.response_excerpt || "—" }))))));
}

async function resend(id) {
  say("Resending…");
  try {
    const event = await api("POST", `/events/${id}/resend`);
    session.events = session.events.map((known) => (known.id === id ? event : known));
    session.attempts.delete(id);
    keepingFocus(renderEvents);
    say(`Event ${event.id} is ${event.state} again: it will be delivered as at its first attempt.`, "ok");
  } catch (error) {
    if (isMissingRoute(error)) {
      session.unavailable.resend = error;
      say(unavailableText("Resending events is", error), "error");
      return;
    }
    fail(error, "Resending the event");
  }
}

// ---------------------------------------------------------------------------------------
// The chart: events of the last hours by the hour they were created and where they stand.

const OUTCOMES = ["delivered", "failed", "pending"];

async function loadChart() {
  const hour = 3600 * 1000;
  const end = Math.ceil(Date.now() / hour) * hour;
  const start = end - CHART_HOURS * hour;
  const counts = Array.from({ length: CHART_HOURS }, () => ({ delivered: 0, failed: 0, pending: 0 }));
  let afterId = null;
  let total = 0;
  let seen = 0;
  let truncated = false;
  let capped = false;
  for (let page = 0; page < CHART_MAX_PAGES; page += 1) {
    const query = { limit: CHART_PAGE_SIZE, date_created__gte: new Date(start).toISOString() };
    if (afterId) query.after_id = afterId;
    const list = await api("GET", "/events", { query });
    total = list.total_count;
    capped = Boolean(list.total_count_capped); // a lower bound: the list does not count every event
    for (const event of list.data) {
      const slot = Math.floor((Date.parse(event.date_created) - start) / hour);
      if (slot >= 0 && slot < CHART_HOURS && OUTCOMES.includes(event.state)) counts[slot][event.state] += 1;
    }
    seen += list.data.length;
    if (!list.has_more || list.data.length === 0) break;
    afterId = list.data[list.data.length - 1].id;
    truncated = page === CHART_MAX_PAGES - 1;
  }
  session.chart = { start, hour, counts, total, seen, truncated, capped };
  renderChart();
}

function hourLabel(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function renderChart() {
  const data = session.chart;
  if (!data) return;
  const box = $("#chart");
  const width = Math.max(300, Math.min(1100, box.clientWidth || 720));
  const height = 200;
  const left = 36;
  const bottom = 24;
  const top = 10;
  const plotWidth = width - left - 8;
  const plotHeight = height - bottom - top;
  const highest = Math.max(1, ...data.counts.map((c) => c.delivered + c.failed + c.pending));
  const slot = plotWidth / data.counts.length;
  const barWidth = Math.max(4, slot * 0.7);
  const labelEvery = width < 560 ? 3 : 1;
  const totals = OUTCOMES.map((outcome) => [outcome, data.counts.reduce((sum, c) => sum + c[outcome], 0)]);
  const summary = `${totals.map(([outcome, n]) => `${n} ${outcome}`).join(", ")} in the last ${CHART_HOURS} hours`;

  const bars = data.counts.map((count, index) => {
    const x = left + index * slot + (slot - barWidth) / 2;
    const from = data.start + index * data.hour;
    let y = top + plotHeight;
    const parts = OUTCOMES.filter((outcome) => count[outcome] > 0).map((outcome) => {
      const h = (count[outcome] / highest) * plotHeight;
      y -= h;
      return svg("rect", { class: `bar-${outcome}`, x: x.toFixed(1), y: y.toFixed(1), width: barWidth.toFixed(1), height: h.toFixed(1) });
    });
    const label = `${hourLabel(from)}–${hourLabel(from + data.hour)}: ${OUTCOMES.map((o) => `${count[o]} ${o}`).join(", ")}`;
    return svg("g", { "data-hour": new Date(from).toISOString() }, svg("title", { text: label }), ...parts,
      index % labelEvery === 0
        ? svg("text", { class: "label", x: (x + barWidth / 2).toFixed(1), y: height - 6, "text-anchor": "middle", text: hourLabel(from) })
        : null);
  });
  const axis = [
    svg("line", { class: "axis", x1: left, y1: top + plotHeight, x2: width - 8, y2: top + plotHeight }),
    svg("text", { class: "label", x: left - 6, y: top + 10, "text-anchor": "end", text: String(highest) }),
    svg("text", { class: "label", x: left - 6, y: top + plotHeight, "text-anchor": "end", text: "0" }),
  ];
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-labelledby": "chart-summary" },
    svg("title", { id: "chart-summary", text: `Deliveries by hour: ${summary}.` }), ...axis, ...bars);
  box.replaceChildren(chart, el("p", { class: "help", "data-chart-summary": "", text: `${summary}.` + (data.truncated
    ? ` Counted the newest ${data.seen} of ${data.capped ? "more" : data.total} events.` : "") }));

  $("#chart-hours").textContent = String(CHART_HOURS);
  $("#chart-legend").replaceChildren(...totals.map(([outcome, n]) =>
    el("li", {}, el("span", { class: `swatch ${outcome}`, "aria-hidden": "true" }), `${outcome}: ${n}`)));
  $("#chart-table").replaceChildren(
    el("caption", { class: "visually-hidden", text: "Events by hour and state" }),
    el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Hour" }),
      ...OUTCOMES.map((outcome) => el("th", { scope: "col", class: "num", text: outcome })))),
    el("tbody", {}, ...data.counts.map((count, index) => el("tr", {},
      el("th", { scope: "row", text: hourLabel(data.start + index * data.hour) }),
      ...OUTCOMES.map((outcome) => el("td", { class: "num", text: String(count[outcome]) }))))));
}

// ---------------------------------------------------------------------------------------
// Wiring

function wire() {
  $("#login-form").addEventListener("submit", login);
  $("#logout").addEventListener("click", () => logout());
  $("#create-form").addEventListener("submit", createConfig);
  $("#refresh").addEventListener("click", () => { say("Refreshing…"); refreshAll(); });
  $("#show-deactivated").addEventListener("change", () => loadConfigs().catch((error) => fail(error, "Reading the configs")));
  $("#events-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadEvents().catch((error) => fail(error, "Reading the events"));
  });
  $("#events-more").addEventListener("click", () => loadEvents(true).catch((error) => fail(error, "Reading older events")));
  let resizing = null;
  window.addEventListener("resize", () => {
    window.clearTimeout(resizing);
    resizing = window.setTimeout(renderChart, 150);
  });
}

async function boot() {
  wire();
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    $("#token").focus();
    return;
  }
  try {
    const key = await api("GET", "/key", { token });
    await start(token, key);
  } catch (error) {
    logout(`The saved token no longer works: ${describe(error)}`, "error");
  }
}

boot();
