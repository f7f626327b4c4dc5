// Mizugiwa dashboard — plain ES module, no bundler.
//
// Globals from classic scripts loaded by index.html: `maplibregl` (MapLibre GL JS) and
// `topojson` (topojson-client). Everything is served by the Mizugiwa daemon itself; the page
// must never reach another host (no tiles, no glyphs, no fonts, no CDN). That is why the map
// style has no `glyphs`/`sprite` and every text label is an HTML marker instead of a symbol
// layer `text-field`.
//
// Data flow: /api/snapshot fills a local model (collection -> id -> record); /api/events (SSE)
// keeps it current. The UI never changes the model optimistically: an alert action is a POST,
// and the row changes only when the stored record comes back over SSE.

/* global maplibregl, topojson */

// ---------------------------------------------------------------------------------------------
// Constants

const HEARTBEAT_FRESH_MS = 30_000; // a site whose last status write is older is STALE
const DRONE_STALE_MS = 120_000;
const VESSEL_STALE_MS = 10 * 60_000;
const COG_VECTOR_MIN = 10; // vessel course vector: where it will be in N minutes at SOG
const MAX_ALERT_ROWS = 500;
const TRACK_REFRESH_MS = 60_000;
const JAPAN_BOUNDS = [[128.0, 32.6], [141.2, 37.4]]; // Tsushima .. Tokyo
const SITE_ZOOM = 9;
const COLLECTIONS = ['sites', 'alerts', 'drones', 'vessels', 'detections', 'gate_stats'];
const SEVERITY_RANK = { critical: 3, high: 2, medium: 1, low: 0 };

const COLORS = {
  sea: '#0a1b2e',
  land: '#17243a',
  coast: '#2f4869',
  border: '#52698f',
  ok: '#22c55e',
  degraded: '#f59e0b',
  stale: '#6b7280',
  drone: '#38bdf8',
  droneLost: '#ef4444',
  vessel: '#a3e635',
  vesselStale: '#64748b',
  track: '#38bdf8',
  vesselTrack: '#84cc16',
  critical: '#ef4444',
  high: '#f43f5e',
  medium: '#f97316',
  low: '#eab308',
};

// ---------------------------------------------------------------------------------------------
// State

const state = {
  token: sessionStorage.getItem('mz_token'),
  user: null,
  role: null,
  node: null,
  mode: null,
  site: null,
  clockOffset: 0, // server wall clock minus ours, from snapshot.now_ms
  model: new Map(COLLECTIONS.map((c) => [c, new Map()])),
  lastEventId: -1, // newest event already reflected in the model
  snapshotLoaded: false,
  syncing: false, // a snapshot load is in flight: SSE events are buffered meanwhile
  pending: [], // buffered SSE events {id, data}
  sseOpen: false,
  everLive: false,
  centredOnSite: false,
  // Track history: entity -> [[at_ms, lat, lon], ...] sorted by time.
  tracks: { drone: new Map(), vessel: new Map() },
  windowMs: 3_600_000,
  historyT: null, // null = live; else the absolute server time shown
  playing: null, // interval id while replaying
  alertFilter: 'open',
  selectedAlert: null,
  layerVisible: { sites: true, drones: true, vessels: true, detections: true, alerts: true, labels: true },
};
window.mzState = state; // for debugging in the console
window.mzMapLoaded = false;

const $ = (sel, root = document) => root.querySelector(sel);
const serverNow = () => Date.now() + state.clockOffset;
const canAct = () => state.role === 'operator' || state.role === 'admin';

// ---------------------------------------------------------------------------------------------
// Record field helpers. Fields may be absent; an `mv` field in conflict is {"conflict":[a,b]};
// JSON-valued fields (peers, queues, detail, comments) may arrive as objects or as JSON text.

function isConflict(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && Array.isArray(v.conflict);
}
function field(rec, name) {
  const v = rec?.fields?.[name];
  return isConflict(v) ? v.conflict[0] : v;
}
function text(rec, name) {
  const v = rec?.fields?.[name];
  if (v === undefined || v === null) return '';
  if (isConflict(v)) return v.conflict.map(String).join(' ⚡ ');
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}
function num(rec, name) {
  const v = field(rec, name);
  const n = typeof v === 'number' ? v : parseFloat(v);
  return Number.isFinite(n) ? n : null;
}
function parseMaybeJson(v) {
  if (typeof v !== 'string') return v;
  try { return JSON.parse(v); } catch { return v; }
}
function json(rec, name) {
  return parseMaybeJson(field(rec, name));
}
function hasPos(rec) {
  return num(rec, 'lat') !== null && num(rec, 'lon') !== null;
}
function comments(rec) {
  let v = json(rec, 'comments');
  if (!Array.isArray(v)) return [];
  return v.map(parseMaybeJson)
    .filter((c) => c && typeof c === 'object')
    .sort((a, b) => (a.at_ms ?? 0) - (b.at_ms ?? 0));
}

function siteHealth(rec, now) {
  const hb = num(rec, 'heartbeat_ms');
  if (hb === null || now - hb > HEARTBEAT_FRESH_MS) return 'stale';
  const peers = json(rec, 'peers');
  if (Array.isArray(peers) && peers.some((p) => !p.connected)) return 'degraded';
  return 'ok';
}

// ---------------------------------------------------------------------------------------------
// Formatting

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));

function fmtAge(ms) {
  if (!Number.isFinite(ms)) return '—';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d`;
}
const jstFmt = new Intl.DateTimeFormat('en-GB', { timeZone: 'Asia/Tokyo', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
const utcFmt = new Intl.DateTimeFormat('en-GB', { timeZone: 'UTC', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
const fmtJst = (t) => `${jstFmt.format(new Date(t))} JST`;
function fmtBytes(n) {
  if (!Number.isFinite(n)) return '—';
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(n < 10 && i ? 1 : 0)} ${u[i]}`;
}
// `data-age` elements show "age of that wall time"; the 1 s tick refreshes them all.
const ageSpan = (t, cls = '') => (Number.isFinite(t) ? `<span class="${cls}" data-age="${t}">${fmtAge(serverNow() - t)}</span>` : `<span class="${cls}">—</span>`);

function toast(msg, kind = 'error', ms = 5000) {
  const el = document.createElement('div');
  el.className = `toast ${kind}`;
  el.textContent = msg;
  $('#toasts').append(el);
  setTimeout(() => el.remove(), ms);
}

// ---------------------------------------------------------------------------------------------
// HTTP

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const raw = await res.text();
  let data = null;
  if (raw) { try { data = JSON.parse(raw); } catch { data = raw; } }
  if (!res.ok) {
    if (res.status === 401 && path !== '/api/login') sessionExpired();
    const msg = (data && typeof data === 'object' && data.error) || `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, msg);
  }
  return data;
}

// ---------------------------------------------------------------------------------------------
// Session

function showLogin(message = '') {
  $('#login').hidden = false;
  $('#login-error').textContent = message;
  $('#who').hidden = true;
  setTimeout(() => $('#login-user').focus(), 0);
}

function signedIn(user, role) {
  state.user = user;
  state.role = role;
  $('#login').hidden = true;
  $('#who').hidden = false;
  $('#who-user').textContent = user;
  $('#who-role').textContent = role;
  document.body.classList.toggle('role-viewer', !canAct());
  // Row content depends on the role (action buttons), so rebuild every row.
  alertRows.forEach((row) => { row.sig = null; });
  startData();
}

function resetSessionState() {
  stopEvents();
  stopPlay();
  state.token = null;
  state.user = state.role = null;
  sessionStorage.removeItem('mz_token');
  state.snapshotLoaded = false;
  state.everLive = false;
  snapGen++; // drop any snapshot or track fetch still in flight
  trackGen++;
  state.syncing = false;
  state.pending = [];
  // Nothing of the previous session stays on screen behind the login form.
  for (const m of state.model.values()) m.clear();
  for (const t of Object.values(state.tracks)) t.clear();
  state.selectedAlert = null;
  COLLECTIONS.forEach(markDirty);
  markDirty('tracks');
  updateConn();
}

let expiredShown = false;
function sessionExpired() {
  if (expiredShown) return;
  expiredShown = true;
  resetSessionState();
  showLogin('Session expired — sign in again.');
}

async function onLoginSubmit(ev) {
  ev.preventDefault();
  const user = $('#login-user').value.trim();
  const password = $('#login-password').value;
  const btn = $('#login-submit');
  btn.disabled = true;
  $('#login-error').textContent = '';
  try {
    const res = await api('/api/login', { method: 'POST', body: { user, password } });
    state.token = res.token;
    sessionStorage.setItem('mz_token', res.token);
    $('#login-password').value = '';
    expiredShown = false;
    signedIn(res.user ?? user, res.role ?? 'viewer');
  } catch (err) {
    $('#login-error').textContent = err.status === 401 ? 'Wrong user or password.' : `Sign-in failed: ${err.message}`;
  } finally {
    btn.disabled = false;
  }
}

async function logout() {
  try { await api('/api/logout', { method: 'POST' }); } catch { /* the session is gone either way */ }
  resetSessionState();
  expiredShown = false;
  showLogin();
}

// ---------------------------------------------------------------------------------------------
// Snapshot + server-sent events
//
// Gap-free start: the EventSource opens first and its events are buffered until the snapshot
// is applied; then buffered events newer than snapshot.event_id are replayed. The browser's
// own reconnects send Last-Event-ID, so the server resumes the stream (or sends `reset`).

let es = null;
let snapGen = 0;
let reopenTimer = null;

function startData() {
  openEvents();
  loadSnapshot(); // also (re)loads track history once the server clock is known
}

function openEvents() {
  stopEvents();
  state.sseOpen = false;
  const source = new EventSource('/api/events');
  es = source;
  source.onopen = () => {
    if (es !== source) return;
    state.sseOpen = true;
    updateConn();
  };
  source.onerror = () => {
    if (es !== source) return;
    state.sseOpen = false;
    updateConn();
    // CONNECTING: the browser retries by itself (with Last-Event-ID). CLOSED: it gave up
    // (HTTP error such as 401, wrong content type); find out why and start over.
    if (source.readyState === EventSource.CLOSED) {
      clearTimeout(reopenTimer);
      reopenTimer = setTimeout(async () => {
        if (es !== source) return;
        try {
          await api('/api/me'); // 401 here shows the login form
          openEvents();
          loadSnapshot(); // a fresh EventSource has no Last-Event-ID: resync from the snapshot
        } catch (err) {
          if (err.status !== 401 && es === source) source.onerror();
        }
      }, 3000);
    }
  };
  source.addEventListener('record', (e) => onSse('record', e));
  source.addEventListener('reset', (e) => onSse('reset', e));
}

function stopEvents() {
  clearTimeout(reopenTimer);
  if (es) es.close();
  es = null;
  state.sseOpen = false;
}

function onSse(type, e) {
  let data;
  try { data = JSON.parse(e.data); } catch { return; }
  if (type === 'reset') {
    loadSnapshot();
    return;
  }
  const id = Number(e.lastEventId);
  if (state.syncing) {
    state.pending.push({ id, data });
    return;
  }
  applyEvent(id, data);
}

function applyEvent(id, data) {
  if (Number.isFinite(id)) {
    // Older than what we hold: already in the snapshot. `<` rather than `<=` so the result is
    // right whether snapshot.event_id means "last event included" or "next event id": an
    // event carries the whole record, so re-applying the very last one changes nothing.
    if (id < state.lastEventId) return;
    if (state.lastEventId >= 0 && id > state.lastEventId + 1) {
      // The server numbers every event by one, so a jump means this page never got some of
      // them (its stream started after the snapshot was read): reload rather than show an
      // incomplete picture. The new snapshot includes this event's record too.
      state.lastEventId = id;
      loadSnapshot();
      return;
    }
    state.lastEventId = id;
  }
  applyRecord(data.collection, data.id, data.record ?? null);
}

async function loadSnapshot() {
  const gen = ++snapGen;
  state.syncing = true;
  state.pending = [];
  updateConn();
  try {
    const snap = await api('/api/snapshot');
    if (gen !== snapGen) return;
    applySnapshot(snap);
    const buffered = state.pending;
    state.pending = [];
    state.syncing = false;
    for (const ev of buffered) applyEvent(ev.id, ev.data);
    updateConn();
    refreshTracks();
  } catch (err) {
    if (gen !== snapGen || err.status === 401) return;
    toast(`Snapshot failed: ${err.message} — retrying`);
    setTimeout(() => { if (gen === snapGen && state.user) loadSnapshot(); }, 3000);
  }
}

function applySnapshot(snap) {
  state.node = snap.node;
  state.mode = snap.mode;
  state.site = snap.site ?? (snap.mode === 'site' ? snap.node : null);
  if (Number.isFinite(snap.now_ms)) state.clockOffset = snap.now_ms - Date.now();
  state.lastEventId = Number.isFinite(snap.event_id) ? snap.event_id : -1;
  for (const c of COLLECTIONS) {
    const m = state.model.get(c);
    m.clear();
    for (const rec of snap.collections?.[c] ?? []) m.set(rec.id, rec);
    // Seed live trails from the positions we now hold.
    if (c === 'drones' || c === 'vessels') for (const rec of m.values()) appendLivePoint(c, rec);
  }
  state.snapshotLoaded = true;
  $('#mode-badge').textContent = state.mode === 'site' ? `site · ${state.site ?? '?'}` : (state.mode ?? '—');
  $('#node-name').textContent = state.node ? `node ${state.node}` : '';
  centreOnSiteOnce();
  COLLECTIONS.forEach(markDirty);
}

function applyRecord(coll, id, rec) {
  if (coll === 'breadcrumbs') {
    // New history minutes arrive like any other record: fold them into the tracks.
    if (rec) {
      mergeTrack(field(rec, 'kind'), field(rec, 'entity'), json(rec, 'points'));
      markDirty(`tracks:${field(rec, 'kind')}`);
    }
    return;
  }
  const m = state.model.get(coll);
  if (!m) return;
  if (rec === null) m.delete(id);
  else {
    m.set(id, rec);
    if (coll === 'drones' || coll === 'vessels') appendLivePoint(coll, rec);
  }
  markDirty(coll);
}

function updateConn() {
  let s;
  if (!state.user) s = 'offline';
  else if (state.sseOpen && state.snapshotLoaded && !state.syncing) s = 'live';
  else s = state.everLive ? 'reconnecting' : 'connecting';
  if (s === 'live') state.everLive = true;
  const el = $('#conn-state');
  if (el.textContent !== s) el.textContent = s;
  $('#conn-dot').className = `dot ${s === 'live' ? 'dot-ok' : s === 'offline' ? 'dot-off' : 'dot-warn'}`;
}

// ---------------------------------------------------------------------------------------------
// Track history

function mergeTrack(kind, entity, points) {
  const tracks = state.tracks[kind];
  if (!tracks || entity == null || !Array.isArray(points)) return;
  const byT = new Map((tracks.get(String(entity)) ?? []).map((p) => [p[0], p]));
  for (const p of points) {
    if (Array.isArray(p) && p.length >= 3 && p.every(Number.isFinite)) byT.set(p[0], p);
  }
  tracks.set(String(entity), [...byT.values()].sort((a, b) => a[0] - b[0]));
}

function appendLivePoint(coll, rec) {
  const kind = coll === 'drones' ? 'drone' : 'vessel';
  const t = num(rec, 'at_ms');
  if (t === null || !hasPos(rec)) return;
  const arr = state.tracks[kind].get(rec.id) ?? [];
  const last = arr[arr.length - 1];
  if (!last || t > last[0]) {
    arr.push([t, num(rec, 'lat'), num(rec, 'lon')]);
    state.tracks[kind].set(rec.id, arr);
    markDirty(`tracks:${kind}`);
  }
}

function pruneTracks() {
  const cutoff = serverNow() - state.windowMs - 60_000;
  for (const tracks of Object.values(state.tracks)) {
    for (const [entity, pts] of tracks) {
      const i = pts.findIndex((p) => p[0] >= cutoff);
      if (i === -1) tracks.delete(entity);
      else if (i > 0) pts.splice(0, i);
    }
  }
}

let trackGen = 0;
async function refreshTracks() {
  if (!state.user) return;
  const gen = ++trackGen;
  lastTrackFetch = serverNow();
  const until = serverNow();
  const since = until - state.windowMs;
  try {
    const [drones, vessels] = await Promise.all(['drone', 'vessel'].map((kind) =>
      api(`/api/tracks?kind=${kind}&since_ms=${Math.floor(since)}&until_ms=${Math.ceil(until)}`)));
    if (gen !== trackGen) return;
    for (const list of [drones, vessels]) {
      for (const tr of list ?? []) mergeTrack(tr.kind, tr.entity, tr.points);
    }
    pruneTracks();
    markDirty('tracks');
  } catch (err) {
    if (err.status !== 401) toast(`Track history failed: ${err.message}`);
  }
}

// Last point at or before t (binary search); null if the entity had no fix yet.
function pointAt(pts, t) {
  let lo = 0, hi = pts.length - 1, best = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (pts[mid][0] <= t) { best = mid; lo = mid + 1; } else hi = mid - 1;
  }
  return best < 0 ? null : { p: pts[best], prev: best > 0 ? pts[best - 1] : null };
}

function bearing(a, b) {
  const toRad = Math.PI / 180;
  const [lat1, lon1, lat2, lon2] = [a[1] * toRad, a[2] * toRad, b[1] * toRad, b[2] * toRad];
  const y = Math.sin(lon2 - lon1) * Math.cos(lat2);
  const x = Math.cos(lat1) * Math.sin(lat2) - Math.sin(lat1) * Math.cos(lat2) * Math.cos(lon2 - lon1);
  return (Math.atan2(y, x) / toRad + 360) % 360;
}

// ---------------------------------------------------------------------------------------------
// Map

let map = null;
const EMPTY_FC = { type: 'FeatureCollection', features: [] };
const LAYER_GROUPS = {
  sites: ['sites-halo', 'sites-circle'],
  drones: ['drone-tracks-line', 'drones-icon'],
  vessels: ['vessel-tracks-line', 'vessel-vectors-line', 'vessels-icon'],
  detections: ['detections-circle'],
  alerts: ['alerts-halo', 'alerts-circle'],
};

function initMap() {
  // Fetch the basemap while MapLibre boots; both are needed before the first useful frame.
  const basemap = Promise.all(['/basemap/land-10m.json', '/basemap/countries-10m.json'].map(async (url) => {
    const res = await fetch(url, { credentials: 'same-origin' });
    if (!res.ok) throw new Error(`${url}: ${res.status}`);
    return res.json();
  }));

  map = new maplibregl.Map({
    container: 'map',
    // Offline style: background is the sea; land and borders are GeoJSON added below.
    style: {
      version: 8,
      sources: {},
      layers: [{ id: 'sea', type: 'background', paint: { 'background-color': COLORS.sea } }],
    },
    bounds: JAPAN_BOUNDS,
    fitBoundsOptions: { padding: 20 },
    attributionControl: { compact: true, customAttribution: 'Basemap: Natural Earth' },
    // Symbol fade-in repaints for 300 ms after every data change; icons here should just move.
    fadeDuration: 0,
    dragRotate: false,
    pitchWithRotate: false,
    maxPitch: 0,
  });
  window.mzMap = map; // for debugging and for the e2e test (waits for 'idle' before screenshots)
  map.touchZoomRotate.disableRotation();
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-right');
  map.addControl(new maplibregl.ScaleControl({ unit: 'nautical' }), 'bottom-right');

  map.on('load', async () => {
    let land, countries;
    try {
      [land, countries] = await basemap;
    } catch (err) {
      toast(`Basemap failed to load: ${err.message}`);
      return;
    }
    // Natural Earth 10m is detailed enough up to ~z10; capping maxzoom keeps tiling cheap.
    const gj = { type: 'geojson', maxzoom: 10, tolerance: 0.3 };
    map.addSource('land', { ...gj, data: topojson.feature(land, land.objects.land) });
    // Only shared (internal) arcs: land borders, not coastlines.
    map.addSource('borders', { ...gj, data: topojson.mesh(countries, countries.objects.countries, (a, b) => a !== b) });
    map.addLayer({ id: 'land-fill', type: 'fill', source: 'land', paint: { 'fill-color': COLORS.land } });
    map.addLayer({ id: 'land-coast', type: 'line', source: 'land', paint: { 'line-color': COLORS.coast, 'line-width': 0.8 } });
    map.addLayer({ id: 'borders-line', type: 'line', source: 'borders', paint: { 'line-color': COLORS.border, 'line-width': 1, 'line-dasharray': [3, 2] } });
    addGraticule();
    addOperationalLayers();
    await whenSourcesLoaded(['land', 'borders']);
    window.mzMapLoaded = true;
    ['sites', 'drones', 'vessels', 'detections', 'alerts', 'tracks'].forEach(markDirty);
  });
  map.on('zoomend', () => markDirty('labels'));
  map.on('moveend', () => markDirty('labels'));
  map.on('error', (e) => console.warn('map:', e.error?.message ?? e));
}

function whenSourcesLoaded(ids) {
  return new Promise((resolve) => {
    const check = () => {
      if (ids.every((id) => map.getSource(id) && map.isSourceLoaded(id))) {
        map.off('sourcedata', check);
        map.off('idle', check);
        resolve();
      }
    };
    map.on('sourcedata', check);
    map.on('idle', check);
    check();
  });
}

function addGraticule() {
  // Faint 1° grid: a sense of scale/position on an otherwise empty sea.
  const lines = [];
  for (let lon = 120; lon <= 150; lon++) lines.push([[lon, 20], [lon, 48]]);
  for (let lat = 20; lat <= 48; lat++) lines.push([[120, lat], [150, lat]]);
  map.addSource('graticule', { type: 'geojson', data: { type: 'Feature', properties: {}, geometry: { type: 'MultiLineString', coordinates: lines } } });
  map.addLayer({ id: 'graticule', type: 'line', source: 'graticule', paint: { 'line-color': '#ffffff', 'line-opacity': 0.05, 'line-width': 1 } }, 'land-fill');
}

// Icons are drawn on a canvas and registered as SDF images so that `icon-color` can tint them.
function makeIcon(draw, size = 48) {
  const c = document.createElement('canvas');
  c.width = c.height = size;
  const ctx = c.getContext('2d');
  ctx.fillStyle = '#fff';
  ctx.strokeStyle = '#fff';
  draw(ctx, size);
  return ctx.getImageData(0, 0, size, size);
}

function addOperationalLayers() {
  // Vessel: a pointed hull, bow up (rotated by COG).
  map.addImage('mz-vessel', makeIcon((ctx, s) => {
    ctx.beginPath();
    ctx.moveTo(s * 0.5, s * 0.08);
    ctx.lineTo(s * 0.74, s * 0.84);
    ctx.lineTo(s * 0.5, s * 0.7);
    ctx.lineTo(s * 0.26, s * 0.84);
    ctx.closePath();
    ctx.fill();
  }), { pixelRatio: 2, sdf: true });
  // Drone: a quad-rotor cross with a heading notch.
  map.addImage('mz-drone', makeIcon((ctx, s) => {
    ctx.lineWidth = s * 0.1;
    ctx.beginPath();
    ctx.moveTo(s * 0.22, s * 0.22); ctx.lineTo(s * 0.78, s * 0.78);
    ctx.moveTo(s * 0.78, s * 0.22); ctx.lineTo(s * 0.22, s * 0.78);
    ctx.stroke();
    for (const [x, y] of [[0.22, 0.22], [0.78, 0.22], [0.22, 0.78], [0.78, 0.78]]) {
      ctx.beginPath(); ctx.arc(s * x, s * y, s * 0.12, 0, Math.PI * 2); ctx.fill();
    }
    ctx.beginPath();
    ctx.moveTo(s * 0.5, s * 0.02); ctx.lineTo(s * 0.62, s * 0.3); ctx.lineTo(s * 0.38, s * 0.3); ctx.closePath();
    ctx.fill();
  }), { pixelRatio: 2, sdf: true });

  for (const id of ['sites', 'drones', 'drone-tracks', 'vessels', 'vessel-tracks', 'vessel-vectors', 'detections', 'alerts']) {
    map.addSource(id, { type: 'geojson', data: EMPTY_FC });
  }

  map.addLayer({
    id: 'vessel-tracks-line', type: 'line', source: 'vessel-tracks',
    paint: { 'line-color': COLORS.vesselTrack, 'line-opacity': 0.45, 'line-width': 1.2 },
  });
  map.addLayer({
    id: 'vessel-vectors-line', type: 'line', source: 'vessel-vectors',
    paint: { 'line-color': COLORS.vessel, 'line-opacity': 0.8, 'line-width': 1, 'line-dasharray': [2, 2] },
  });
  map.addLayer({
    id: 'drone-tracks-line', type: 'line', source: 'drone-tracks',
    paint: { 'line-color': COLORS.track, 'line-opacity': 0.7, 'line-width': 1.6 },
  });
  map.addLayer({
    id: 'detections-circle', type: 'circle', source: 'detections',
    paint: {
      'circle-radius': 7,
      'circle-color': 'rgba(0,0,0,0)',
      'circle-stroke-width': 2,
      // Unmatched detections (no AIS target) are the interesting ones: magenta.
      'circle-stroke-color': ['case', ['get', 'matched'], '#94a3b8', '#e879f9'],
      'circle-stroke-opacity': ['get', 'opacity'],
    },
  });
  map.addLayer({
    id: 'vessels-icon', type: 'symbol', source: 'vessels',
    layout: {
      'icon-image': 'mz-vessel', 'icon-size': 0.9, 'icon-rotate': ['get', 'cog'],
      'icon-rotation-alignment': 'map', 'icon-allow-overlap': true, 'icon-ignore-placement': true,
    },
    paint: { 'icon-color': ['case', ['get', 'stale'], COLORS.vesselStale, COLORS.vessel], 'icon-opacity': ['case', ['get', 'past'], 0.7, 1] },
  });
  map.addLayer({
    id: 'drones-icon', type: 'symbol', source: 'drones',
    layout: {
      'icon-image': 'mz-drone', 'icon-size': 0.8, 'icon-rotate': ['get', 'heading'],
      'icon-rotation-alignment': 'map', 'icon-allow-overlap': true, 'icon-ignore-placement': true,
    },
    paint: {
      'icon-color': ['case', ['get', 'lost'], COLORS.droneLost, ['get', 'stale'], COLORS.stale, COLORS.drone],
      'icon-opacity': ['case', ['get', 'past'], 0.7, 1],
    },
  });
  const sevColor = ['match', ['get', 'severity'], 'critical', COLORS.critical, 'high', COLORS.high, 'medium', COLORS.medium, COLORS.low];
  map.addLayer({
    id: 'alerts-halo', type: 'circle', source: 'alerts',
    filter: ['==', ['get', 'status'], 'new'],
    paint: { 'circle-radius': 16, 'circle-color': sevColor, 'circle-opacity': 0.18, 'circle-blur': 0.4 },
  });
  map.addLayer({
    id: 'alerts-circle', type: 'circle', source: 'alerts',
    paint: {
      'circle-radius': ['match', ['get', 'severity'], 'critical', 8, 'high', 7, 6],
      'circle-color': sevColor,
      'circle-stroke-color': ['case', ['get', 'selected'], '#ffffff', '#1f0a0a'],
      'circle-stroke-width': ['case', ['get', 'selected'], 2.5, 1.5],
      'circle-opacity': ['case', ['==', ['get', 'status'], 'acknowledged'], 0.6, 1],
    },
  });
  const healthColor = ['match', ['get', 'health'], 'ok', COLORS.ok, 'degraded', COLORS.degraded, COLORS.stale];
  map.addLayer({
    id: 'sites-halo', type: 'circle', source: 'sites',
    paint: { 'circle-radius': 14, 'circle-color': healthColor, 'circle-opacity': 0.15 },
  });
  map.addLayer({
    id: 'sites-circle', type: 'circle', source: 'sites',
    paint: { 'circle-radius': 7, 'circle-color': healthColor, 'circle-stroke-color': '#0b1220', 'circle-stroke-width': 2 },
  });

  for (const layer of ['sites-circle', 'drones-icon', 'vessels-icon', 'detections-circle', 'alerts-circle']) {
    map.on('click', layer, (e) => showPopup(e.features[0], e.lngLat));
    map.on('mouseenter', layer, () => { map.getCanvas().style.cursor = 'pointer'; });
    map.on('mouseleave', layer, () => { map.getCanvas().style.cursor = ''; });
  }
  applyLayerVisibility();
}

function setSource(id, fc) {
  const src = map?.getSource(id);
  if (src) src.setData(fc);
}
const pointFeature = (lon, lat, properties) => ({ type: 'Feature', properties, geometry: { type: 'Point', coordinates: [lon, lat] } });

function applyLayerVisibility() {
  if (!map?.getLayer('sites-circle')) return;
  for (const [group, layers] of Object.entries(LAYER_GROUPS)) {
    for (const l of layers) map.setLayoutProperty(l, 'visibility', state.layerVisible[group] ? 'visible' : 'none');
  }
  markDirty('labels');
}

function centreOnSiteOnce() {
  if (state.centredOnSite || state.mode !== 'site' || !map) return;
  const rec = state.model.get('sites').get(state.site);
  if (!rec || !hasPos(rec)) return;
  state.centredOnSite = true;
  map.jumpTo({ center: [num(rec, 'lon'), num(rec, 'lat')], zoom: SITE_ZOOM });
}

// --- map data ---

function renderSitesLayer(now) {
  const features = [];
  for (const rec of state.model.get('sites').values()) {
    if (!hasPos(rec)) continue;
    features.push(pointFeature(num(rec, 'lon'), num(rec, 'lat'), { coll: 'sites', id: rec.id, health: siteHealth(rec, now) }));
  }
  // Called every second for health; software-rendered WebGL makes needless redraws costly.
  const sig = JSON.stringify(features);
  if (sig === lastSitesSig) return;
  lastSitesSig = sig;
  setSource('sites', { type: 'FeatureCollection', features });
}
let lastSitesSig = '';

function renderAlertsLayer() {
  const features = [];
  for (const rec of state.model.get('alerts').values()) {
    const status = field(rec, 'status') ?? 'new';
    if (status === 'resolved' || !hasPos(rec)) continue;
    features.push(pointFeature(num(rec, 'lon'), num(rec, 'lat'), {
      coll: 'alerts', id: rec.id, status, severity: field(rec, 'severity') ?? 'low', selected: rec.id === state.selectedAlert,
    }));
  }
  // Draw the most severe last (on top).
  features.sort((a, b) => (SEVERITY_RANK[a.properties.severity] ?? 0) - (SEVERITY_RANK[b.properties.severity] ?? 0));
  setSource('alerts', { type: 'FeatureCollection', features });
}

function viewTime() {
  return state.historyT ?? serverNow();
}

function renderDetectionsLayer() {
  const t = viewTime();
  const since = t - state.windowMs;
  const features = [];
  for (const rec of state.model.get('detections').values()) {
    const at = num(rec, 'at_ms');
    if (!hasPos(rec) || (at !== null && (at > t || at < since))) continue;
    const age = at === null ? 0 : t - at;
    features.push(pointFeature(num(rec, 'lon'), num(rec, 'lat'), {
      coll: 'detections', id: rec.id, matched: !!field(rec, 'matched_mmsi'),
      opacity: Math.max(0.3, 1 - age / state.windowMs),
    }));
  }
  setSource('detections', { type: 'FeatureCollection', features });
}

// Positions of drones/vessels: live records, or (history mode) the last breadcrumb <= slider.
function movers(coll) {
  const kind = coll === 'drones' ? 'drone' : 'vessel';
  const out = [];
  if (state.historyT === null) {
    const now = serverNow();
    for (const rec of state.model.get(coll).values()) {
      if (!hasPos(rec)) continue;
      const at = num(rec, 'at_ms');
      out.push({ id: rec.id, rec, lon: num(rec, 'lon'), lat: num(rec, 'lat'), at, past: false,
        stale: at !== null && now - at > (coll === 'drones' ? DRONE_STALE_MS : VESSEL_STALE_MS),
        course: num(rec, coll === 'drones' ? 'heading_deg' : 'cog_deg') });
    }
  } else {
    const t = state.historyT;
    for (const [entity, pts] of state.tracks[kind]) {
      const hit = pointAt(pts, t);
      if (!hit || t - hit.p[0] > state.windowMs) continue;
      const rec = state.model.get(coll).get(entity) ?? null;
      out.push({ id: entity, rec, lat: hit.p[1], lon: hit.p[2], at: hit.p[0], past: true,
        stale: t - hit.p[0] > (coll === 'drones' ? DRONE_STALE_MS : VESSEL_STALE_MS),
        course: hit.prev ? bearing(hit.prev, hit.p) : 0 });
    }
  }
  return out;
}

// Each kind has its own sources and dirty flags: with software WebGL (and on busy consoles) a
// setData costs a re-tile and a repaint, so a drone update must not re-send every vessel.
function renderDrones() {
  const drones = movers('drones');
  setSource('drones', { type: 'FeatureCollection', features: drones.map((d) => pointFeature(d.lon, d.lat, {
    coll: 'drones', id: d.id, heading: d.course ?? 0, past: d.past, stale: d.stale,
    lost: !d.past && field(d.rec, 'link') === 'lost',
  })) });
  moverCache.drones = drones;
}

function renderVessels() {
  const vessels = movers('vessels');
  const vectors = [];
  setSource('vessels', { type: 'FeatureCollection', features: vessels.map((v) => {
    const sog = v.past ? null : num(v.rec, 'sog_kn');
    if (sog && v.course !== null && !v.stale) {
      // Course-over-ground vector: position after COG_VECTOR_MIN minutes at SOG (flat-earth is fine here).
      const d = sog * 1852 * (COG_VECTOR_MIN / 60);
      const r = (v.course * Math.PI) / 180;
      const dLat = (d * Math.cos(r)) / 111_320;
      const dLon = (d * Math.sin(r)) / (111_320 * Math.cos((v.lat * Math.PI) / 180));
      vectors.push({ type: 'Feature', properties: {}, geometry: { type: 'LineString', coordinates: [[v.lon, v.lat], [v.lon + dLon, v.lat + dLat]] } });
    }
    return pointFeature(v.lon, v.lat, { coll: 'vessels', id: v.id, cog: v.course ?? 0, past: v.past, stale: v.stale });
  }) });
  setSource('vessel-vectors', { type: 'FeatureCollection', features: vectors });
  moverCache.vessels = vessels;
}
const moverCache = { drones: [], vessels: [] };

function renderTracks(kind) {
  const t = viewTime();
  const since = t - state.windowMs;
  const features = [];
  for (const [entity, pts] of state.tracks[kind]) {
    const coords = [];
    for (const p of pts) {
      if (p[0] < since) continue;
      if (p[0] > t) break;
      coords.push([p[2], p[1]]);
    }
    if (coords.length >= 2) features.push({ type: 'Feature', properties: { entity }, geometry: { type: 'LineString', coordinates: coords } });
  }
  setSource(`${kind}-tracks`, { type: 'FeatureCollection', features });
}

// --- HTML labels (no glyphs: text is DOM, positioned by maplibregl.Marker) ---

const labelMarkers = new Map(); // key -> {marker, el}

function renderLabels(now) {
  if (!map) return;
  const want = new Map(); // key -> {lngLat, text, cls}
  const on = state.layerVisible.labels;
  if (on && state.layerVisible.sites) {
    for (const rec of state.model.get('sites').values()) {
      if (!hasPos(rec)) continue;
      const stale = siteHealth(rec, now) === 'stale';
      want.set(`s:${rec.id}`, { lngLat: [num(rec, 'lon'), num(rec, 'lat')], text: stale ? `${rec.id} · STALE` : rec.id, cls: stale ? 'map-label stale' : 'map-label' });
    }
  }
  // Drone names only from regional zoom on; at country scale they pile up on their site.
  if (on && state.layerVisible.drones && map.getZoom() >= 7) {
    for (const d of moverCache.drones) {
      const alt = d.past ? null : num(d.rec, 'alt_m');
      want.set(`d:${d.id}`, { lngLat: [d.lon, d.lat], text: alt !== null ? `${d.id} ${Math.round(alt)}m` : d.id, cls: 'map-label small' });
    }
  }
  // Vessel names only when zoomed in: AIS can be hundreds of targets.
  if (on && state.layerVisible.vessels && map.getZoom() >= 8.5) {
    const b = map.getBounds();
    let n = 0;
    for (const v of moverCache.vessels) {
      if (n >= 150 || !b.contains([v.lon, v.lat])) continue;
      n++;
      want.set(`v:${v.id}`, { lngLat: [v.lon, v.lat], text: (v.rec && text(v.rec, 'name')) || v.id, cls: 'map-label small' });
    }
  }
  for (const [key, m] of labelMarkers) {
    if (!want.has(key)) { m.marker.remove(); labelMarkers.delete(key); }
  }
  for (const [key, w] of want) {
    let m = labelMarkers.get(key);
    if (!m) {
      // The marker element itself is positioned by MapLibre (its class and transform are
      // MapLibre's); the styled label is a child so neither clobbers the other.
      const wrap = document.createElement('div');
      const el = document.createElement('div');
      wrap.append(el);
      m = { el, marker: new maplibregl.Marker({ element: wrap, anchor: 'bottom' }).setLngLat(w.lngLat).addTo(map) };
      labelMarkers.set(key, m);
    } else {
      m.marker.setLngLat(w.lngLat);
    }
    if (m.el.textContent !== w.text) m.el.textContent = w.text;
    if (m.el.className !== w.cls) m.el.className = w.cls;
  }
}

// --- popups ---

function popupTable(rows) {
  return `<table>${rows.filter(([, v]) => v !== '' && v != null).map(([k, v]) => `<tr><td>${esc(k)}</td><td>${v}</td></tr>`).join('')}</table>`;
}

function showPopup(feature, lngLat) {
  const { coll, id } = feature.properties;
  const rec = state.model.get(coll)?.get(id);
  let html;
  const fmtN = (name, digits, unit = '') => { const v = num(rec, name); return v === null ? '' : `${v.toFixed(digits)}${unit}`; };
  if (!rec) {
    html = `<div class="popup"><h3>${esc(id)}</h3><div class="muted">history position</div></div>`;
  } else if (coll === 'sites') {
    html = `<div class="popup"><h3>${esc(id)}</h3>${popupTable([
      ['kind', esc(text(rec, 'kind'))], ['health', esc(siteHealth(rec, serverNow()))],
      ['heartbeat', ageSpan(num(rec, 'heartbeat_ms'))], ['version', esc(text(rec, 'version'))],
      ['uptime', fmtAge((num(rec, 'uptime_s') ?? NaN) * 1000)],
    ])}</div>`;
  } else if (coll === 'drones') {
    html = `<div class="popup"><h3>Drone ${esc(id)}</h3>${popupTable([
      ['site', esc(text(rec, 'site'))], ['mode', esc(text(rec, 'mode'))], ['link', esc(text(rec, 'link'))],
      ['alt', fmtN('alt_m', 0, ' m')], ['speed', fmtN('speed_mps', 1, ' m/s')], ['heading', fmtN('heading_deg', 0, '°')],
      ['battery', fmtN('battery_pct', 0, '%')], ['fix', ageSpan(num(rec, 'at_ms'))],
    ])}</div>`;
  } else if (coll === 'vessels') {
    html = `<div class="popup"><h3>${esc(text(rec, 'name') || 'Unknown vessel')}</h3>${popupTable([
      ['MMSI', esc(id)], ['type', esc(text(rec, 'ship_type'))], ['SOG', fmtN('sog_kn', 1, ' kn')],
      ['COG', fmtN('cog_deg', 0, '°')], ['site', esc(text(rec, 'site'))], ['AIS age', ageSpan(num(rec, 'at_ms'))],
    ])}</div>`;
  } else if (coll === 'detections') {
    html = `<div class="popup"><h3>Detection ${esc(id)}</h3>${popupTable([
      ['source', esc(text(rec, 'source'))], ['site', esc(text(rec, 'site'))], ['length', fmtN('length_m', 0, ' m')],
      ['AIS match', esc(text(rec, 'matched_mmsi')) || '<b class="dark-target">none (dark)</b>'], ['age', ageSpan(num(rec, 'at_ms'))],
    ])}</div>`;
  } else if (coll === 'alerts') {
    selectAlert(id, { fly: false });
    html = `<div class="popup"><h3>${esc(text(rec, 'title'))}</h3>${popupTable([
      ['severity', esc(text(rec, 'severity'))], ['status', esc(text(rec, 'status') || 'new')], ['kind', esc(text(rec, 'kind'))],
      ['site', esc(text(rec, 'site'))], ['raised', ageSpan(num(rec, 'raised_ms'))], ['assignee', esc(text(rec, 'assignee'))],
    ])}</div>`;
  }
  new maplibregl.Popup({ closeButton: true, maxWidth: '320px' }).setLngLat(lngLat).setHTML(html).addTo(map);
}

// ---------------------------------------------------------------------------------------------
// Side panel. Rows are keyed DOM nodes updated in place, so a row (and its buttons) is only
// rebuilt when its record changes; the 1 s tick only rewrites `data-age` texts.

// Move/insert `els` into `container` in this order, removing rows no longer wanted.
function syncChildren(container, els) {
  let cursor = container.firstChild;
  for (const el of els) {
    if (el === cursor) { cursor = cursor.nextSibling; continue; }
    container.insertBefore(el, cursor);
  }
  while (cursor) { const next = cursor.nextSibling; cursor.remove(); cursor = next; }
}

const siteRows = new Map(); // id -> {el, sig}

function renderSiteList(now) {
  // In site mode the node's own site comes first; otherwise alphabetical.
  const own = state.mode === 'site' ? state.site : null;
  const sites = [...state.model.get('sites').values()]
    .sort((a, b) => (b.id === own) - (a.id === own) || a.id.localeCompare(b.id));
  const els = [];
  const counts = { ok: 0, degraded: 0, stale: 0 };
  for (const rec of sites) {
    const health = siteHealth(rec, now);
    counts[health]++;
    let row = siteRows.get(rec.id);
    if (!row) {
      const el = document.createElement('div');
      el.className = 'site-row';
      el.dataset.testid = 'site-row';
      el.dataset.site = rec.id;
      el.addEventListener('click', () => flyToRecord('sites', rec.id, SITE_ZOOM));
      row = { el, sig: null };
      siteRows.set(rec.id, row);
    }
    const sig = `${health}|${rec.updated}|${JSON.stringify(rec.fields)}`;
    if (row.sig !== sig) { fillSiteRow(row.el, rec, health); row.sig = sig; }
    els.push(row.el);
  }
  for (const id of siteRows.keys()) if (!state.model.get('sites').has(id)) siteRows.delete(id);
  if (!els.length) els.push(emptyRow('site-empty', state.snapshotLoaded ? 'No sites reporting' : 'Loading…'));
  syncChildren($('#site-list'), els);
  $('#sites-count').textContent = sites.length ? `${counts.ok} ok · ${counts.degraded} degraded · ${counts.stale} stale` : '';
  return counts;
}

function fillSiteRow(el, rec, health) {
  el.className = `site-row health-${health}`;
  el.dataset.health = health;
  const dot = health === 'ok' ? 'dot-ok' : health === 'degraded' ? 'dot-warn' : 'dot-stale';
  const hb = num(rec, 'heartbeat_ms');
  const peers = json(rec, 'peers');
  const queues = json(rec, 'queues');
  const free = num(rec, 'disk_free_bytes');
  const total = num(rec, 'disk_total_bytes');
  const queueText = queues && typeof queues === 'object'
    ? Object.entries(queues).filter(([, d]) => d).map(([q, d]) => `${q} ${d}`).join(', ') : '';
  el.innerHTML = `
    <div class="head">
      <span class="dot ${dot}"></span>
      <span class="name">${esc(rec.id)}</span>
      <span class="muted">${esc(text(rec, 'kind'))}</span>
      ${health === 'stale' ? '<span class="stale-tag">STALE</span>' : ''}
      <span class="hb" title="Last heartbeat">♥ ${ageSpan(hb)}</span>
    </div>
    <div class="meta">
      v${esc(text(rec, 'version') || '?')} · up ${fmtAge((num(rec, 'uptime_s') ?? NaN) * 1000)}
      · disk ${free !== null && total ? `${fmtBytes(free)} free (${Math.round((100 * free) / total)}%)` : '—'}
      ${queueText ? `· queues ${esc(queueText)}` : ''}
    </div>
    <div class="peers">${Array.isArray(peers) && peers.length ? peers.map((p) => `
      <span class="peer ${p.connected ? '' : 'down'}" title="last contact ${Number.isFinite(p.last_contact_ms) ? fmtJst(p.last_contact_ms) : '—'}">
        <span class="dot ${p.connected ? 'dot-ok' : 'dot-warn'}"></span>${esc(p.peer)}
        ${p.connected ? '' : ageSpan(p.last_contact_ms)}
        <span class="muted">lag ${Number(p.lag_changes ?? 0)}/${Number(p.lag_entries ?? 0)}</span>
      </span>`).join('') : '<span class="muted">no peers</span>'}</div>`;
}

function emptyRow(key, msg) {
  let el = document.getElementById(key);
  if (!el) { el = document.createElement('div'); el.id = key; el.className = 'empty'; }
  el.textContent = msg;
  return el;
}

const alertRows = new Map(); // id -> {el, sig}

function alertMatchesFilter(status) {
  switch (state.alertFilter) {
    case 'open': return status !== 'resolved';
    case 'all': return true;
    default: return status === state.alertFilter;
  }
}

function renderAlertList() {
  const all = [...state.model.get('alerts').values()];
  const list = all
    .filter((r) => alertMatchesFilter(field(r, 'status') ?? 'new'))
    .sort((a, b) => (num(b, 'raised_ms') ?? 0) - (num(a, 'raised_ms') ?? 0) || b.id.localeCompare(a.id));
  const shown = list.slice(0, MAX_ALERT_ROWS);
  const els = [];
  const act = canAct();
  for (const rec of shown) {
    let row = alertRows.get(rec.id);
    if (!row) {
      const el = document.createElement('div');
      el.dataset.testid = 'alert-row';
      el.dataset.alert = rec.id;
      row = { el, sig: null };
      alertRows.set(rec.id, row);
    }
    const sig = `${act}|${rec.updated}|${JSON.stringify(rec.fields)}|${rec.id === state.selectedAlert}`;
    if (row.sig !== sig) { fillAlertRow(row.el, rec, act); row.sig = sig; }
    els.push(row.el);
  }
  const alive = new Set(shown.map((r) => r.id));
  for (const id of alertRows.keys()) if (!alive.has(id)) alertRows.delete(id);
  if (!els.length) els.push(emptyRow('alert-empty', state.snapshotLoaded ? 'No alerts match this filter' : 'Loading…'));
  if (list.length > shown.length) els.push(emptyRow('alert-more', `+${list.length - shown.length} older not shown`));
  syncChildren($('#alert-list'), els);
  const open = all.filter((r) => (field(r, 'status') ?? 'new') !== 'resolved');
  $('#alerts-count').textContent = `${list.length} shown · ${open.length} open`;
  return open;
}

function fillAlertRow(el, rec, act) {
  const status = field(rec, 'status') ?? 'new';
  const sev = field(rec, 'severity') ?? 'low';
  el.className = `alert-row sev-${sev} status-${status}${rec.id === state.selectedAlert ? ' selected' : ''}`;
  // data-status reflects the stored record only (set here, from SSE/snapshot data).
  el.dataset.status = status;
  const cs = comments(rec);
  const who = (name, label) => (text(rec, name) ? `<span>${label} <b>${esc(text(rec, name))}</b></span>` : '');
  el.innerHTML = `
    <div class="head" data-action="select">
      <span class="sev sev-b-${esc(sev)}">${esc(sev)}</span>
      <span class="title">${esc(text(rec, 'title') || rec.id)}</span>
      <span class="status status-b-${esc(status)}">${esc(status)}</span>
      ${ageSpan(num(rec, 'raised_ms'), 'age')}
    </div>
    <div class="meta">
      <span>${esc(text(rec, 'kind'))}</span>
      <span>@ ${esc(text(rec, 'site') || '—')}</span>
      ${who('assignee', 'assigned')}${who('acked_by', 'acked by')}${who('resolved_by', 'resolved by')}
    </div>
    ${cs.length ? `<ul class="comments">${cs.map((c) => `<li><span class="by">${esc(c.by)}</span> <span class="muted">${Number.isFinite(c.at_ms) ? fmtJst(c.at_ms) : ''}</span> ${esc(c.text)}</li>`).join('')}</ul>` : ''}
    ${act ? `<div class="actions">
      <button type="button" class="btn" data-testid="ack-button" data-action="ack" ${status === 'new' ? '' : 'disabled'}>Acknowledge</button>
      <button type="button" class="btn" data-testid="resolve-button" data-action="resolve" ${status === 'resolved' ? 'disabled' : ''}>Resolve</button>
      <button type="button" class="btn" data-testid="assign-button" data-action="assign">Assign</button>
      <button type="button" class="btn" data-testid="comment-button" data-action="comment">Comment</button>
    </div>` : ''}`;
}

// One delegated listener for every alert row.
async function onAlertListClick(ev) {
  const target = ev.target.closest('[data-action]');
  const row = ev.target.closest('[data-testid=alert-row]');
  if (!target || !row) return;
  const id = row.dataset.alert;
  const action = target.dataset.action;
  if (action === 'select') { selectAlert(id, { fly: true }); return; }
  if (!canAct()) return;
  let body;
  if (action === 'assign') {
    const current = text(state.model.get('alerts').get(id), 'assignee');
    const assignee = window.prompt(`Assign alert ${id} to:`, current || state.user || '');
    if (assignee === null || !assignee.trim()) return;
    body = { assignee: assignee.trim() };
  } else if (action === 'comment') {
    const t = window.prompt(`Comment on alert ${id}:`);
    if (t === null || !t.trim()) return;
    body = { text: t.trim() };
  }
  target.disabled = true;
  target.classList.add('busy');
  try {
    // No local change: the row updates when the stored record is echoed over SSE.
    await api(`/api/alerts/${encodeURIComponent(id)}/${action}`, { method: 'POST', body });
  } catch (err) {
    toast(err.status === 403 ? `Not allowed: ${err.message}` : `${action} failed: ${err.message}`);
    target.disabled = false;
  } finally {
    target.classList.remove('busy');
  }
  // Normally the echo rebuilds the row (and this button) well before; if the store had nothing
  // to change (e.g. a second ack), give the button back.
  setTimeout(() => { if (target.isConnected) target.disabled = false; }, 10_000);
}

function selectAlert(id, { fly }) {
  state.selectedAlert = id;
  markDirty('alerts');
  if (fly) flyToRecord('alerts', id, Math.max(map?.getZoom() ?? 0, 9));
  const row = alertRows.get(id);
  if (row) row.el.scrollIntoView({ block: 'nearest' });
}

function flyToRecord(coll, id, zoom) {
  const rec = state.model.get(coll).get(id);
  if (map && rec && hasPos(rec)) map.flyTo({ center: [num(rec, 'lon'), num(rec, 'lat')], zoom, speed: 1.6 });
}

function renderGateTable() {
  const rows = [...state.model.get('gate_stats').values()]
    .sort((a, b) => text(a, 'site').localeCompare(text(b, 'site')) || text(a, 'gate').localeCompare(text(b, 'gate'), undefined, { numeric: true }));
  const tbody = $('#gate-table tbody');
  if (!rows.length) {
    tbody.innerHTML = '<tr><td colspan="6" class="empty">No gate data</td></tr>';
    return;
  }
  tbody.innerHTML = rows.map((rec) => {
    const opened = num(rec, 'opened') ?? 0;
    const officer = num(rec, 'officer_lane') ?? 0;
    return `<tr data-testid="gate-row" data-gate="${esc(rec.id)}">
      <td>${esc(text(rec, 'site'))}</td><td>${esc(text(rec, 'gate'))}</td>
      <td class="num">${opened}</td><td class="num">${officer}</td>
      <td class="num">${opened ? `${Math.round((100 * officer) / opened)}%` : '—'}</td>
      <td class="num mono">${ageSpan(num(rec, 'at_ms'))}</td></tr>`;
  }).join('');
}

function renderSummary(siteCounts, openAlerts) {
  const bySev = { critical: 0, high: 0, medium: 0, low: 0 };
  for (const r of openAlerts) bySev[field(r, 'severity')] = (bySev[field(r, 'severity')] ?? 0) + 1;
  const sevText = ['critical', 'high', 'medium', 'low'].filter((s) => bySev[s]).map((s) => `<span class="sev sev-b-${s}">${bySev[s]} ${s}</span>`).join(' ');
  $('#summary').innerHTML = `
    <span class="pill">Sites <b>${siteCounts.ok}</b> ok${siteCounts.degraded ? ` · <b class="warn">${siteCounts.degraded}</b> degraded` : ''}${siteCounts.stale ? ` · <b>${siteCounts.stale}</b> stale` : ''}</span>
    <span class="pill">Open alerts <b>${openAlerts.length}</b> ${sevText}</span>
    <span class="pill">Drones <b>${state.model.get('drones').size}</b></span>
    <span class="pill">Vessels <b>${state.model.get('vessels').size}</b></span>`;
}

// ---------------------------------------------------------------------------------------------
// Render scheduling: SSE bursts are coalesced into one render per ~80 ms.

const dirty = new Set();
let renderTimer = null;
function markDirty(what) {
  dirty.add(what);
  if (!renderTimer) renderTimer = setTimeout(render, 80);
}

let lastSummaryKey = '';
function render() {
  renderTimer = null;
  const d = new Set(dirty);
  dirty.clear();
  const now = serverNow();
  const mapReady = window.mzMapLoaded;
  const siteCounts = renderSiteList(now);
  let open = null;
  if (d.has('alerts')) open = renderAlertList();
  if (d.has('gate_stats')) renderGateTable();
  if (mapReady) {
    if (d.has('sites')) renderSitesLayer(now);
    if (d.has('alerts')) renderAlertsLayer();
    // 'tracks' (all history replaced) and 'time' (slider moved) touch everything time-based.
    const all = d.has('tracks') || d.has('time');
    if (all || d.has('detections')) renderDetectionsLayer();
    if (all || d.has('drones') || d.has('tracks:drone')) renderDrones();
    if (all || d.has('vessels') || d.has('tracks:vessel')) renderVessels();
    if (all || d.has('tracks:drone')) renderTracks('drone');
    if (all || d.has('tracks:vessel')) renderTracks('vessel');
    renderLabels(now);
  }
  open ??= [...state.model.get('alerts').values()].filter((r) => (field(r, 'status') ?? 'new') !== 'resolved');
  const key = `${JSON.stringify(siteCounts)}|${open.map((r) => r.id + field(r, 'severity')).join()}|${state.model.get('drones').size}|${state.model.get('vessels').size}`;
  if (key !== lastSummaryKey) { renderSummary(siteCounts, open); lastSummaryKey = key; }
}

// ---------------------------------------------------------------------------------------------
// Time slider (track history)

function sliderToTime(v) {
  const now = serverNow();
  return now - state.windowMs + (Number(v) / 1000) * state.windowMs;
}

function updateTimeUI() {
  const now = serverNow();
  const slider = $('#time-slider');
  $('#time-start').textContent = `−${fmtAge(state.windowMs)}`;
  const label = $('#time-label');
  if (state.historyT === null) {
    if (document.activeElement !== slider) slider.value = '1000';
    label.textContent = 'LIVE';
    label.className = 'mono time-live';
  } else {
    slider.value = String(Math.round(((state.historyT - (now - state.windowMs)) / state.windowMs) * 1000));
    label.textContent = `${fmtJst(state.historyT)} (−${fmtAge(now - state.historyT)})`;
    label.className = 'mono time-past';
  }
  $('#play').textContent = state.playing ? '❚❚' : '▶';
}

function setHistoryTime(t) {
  const now = serverNow();
  state.historyT = t === null || t >= now - 1000 ? null : Math.max(t, now - state.windowMs);
  updateTimeUI();
  markDirty('time');
}

function stopPlay() {
  if (state.playing) clearInterval(state.playing);
  state.playing = null;
}

function togglePlay() {
  if (state.playing) { stopPlay(); updateTimeUI(); return; }
  if (state.historyT === null) setHistoryTime(serverNow() - state.windowMs);
  // Replays the window in ~20 s whatever its length.
  const step = state.windowMs / 200;
  state.playing = setInterval(() => {
    setHistoryTime(state.historyT + step);
    if (state.historyT === null) stopPlay();
    updateTimeUI();
  }, 100);
  updateTimeUI();
}

// ---------------------------------------------------------------------------------------------
// Clock tick: health, ages and the slider move with (server) time even without events.

let lastTrackFetch = 0;
function tick() {
  const now = serverNow();
  $('#clock').textContent = `${utcFmt.format(new Date(now))}Z · ${fmtJst(now)}`;
  for (const el of document.querySelectorAll('[data-age]')) {
    const t = Number(el.dataset.age);
    const s = fmtAge(now - t);
    if (el.textContent !== s) el.textContent = s;
  }
  // Site health can flip to STALE with no event at all; recomputed every second.
  markDirty('sites');
  // In live mode time only moves stale flags and the detection window: every 10 s is enough.
  if (state.historyT === null && Math.floor(now / 1000) % 10 === 0) markDirty('time');
  updateTimeUI();
  // Breadcrumb records also arrive over SSE; the periodic refetch covers anything missed.
  if (state.user && state.snapshotLoaded && now - lastTrackFetch > TRACK_REFRESH_MS) refreshTracks();
}

// ---------------------------------------------------------------------------------------------
// Wiring

function wire() {
  $('#login-form').addEventListener('submit', onLoginSubmit);
  $('#logout').addEventListener('click', logout);
  $('#alert-list').addEventListener('click', onAlertListClick);
  $('#alert-filter').addEventListener('change', (e) => {
    state.alertFilter = e.target.value;
    markDirty('alerts');
  });
  for (const cb of document.querySelectorAll('#layers input[data-layer]')) {
    cb.addEventListener('change', () => {
      state.layerVisible[cb.dataset.layer] = cb.checked;
      applyLayerVisibility();
    });
  }
  const slider = $('#time-slider');
  slider.addEventListener('input', () => {
    stopPlay();
    setHistoryTime(slider.value === '1000' ? null : sliderToTime(slider.value));
  });
  $('#play').addEventListener('click', togglePlay);
  $('#window').addEventListener('change', (e) => {
    state.windowMs = Number(e.target.value);
    stopPlay();
    setHistoryTime(state.historyT);
    refreshTracks();
  });
}

async function boot() {
  wire();
  initMap();
  updateConn();
  updateTimeUI();
  setInterval(tick, 1000);
  tick();
  if (state.token) {
    // A reload in the same tab: reuse the session if the server still knows it.
    try {
      const me = await api('/api/me');
      signedIn(me.user ?? me.name, me.role);
      return;
    } catch { /* fall through to the login form */ }
    expiredShown = false;
  }
  showLogin();
}

boot();
