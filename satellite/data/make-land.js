// Regenerates land-japan.geojson: Natural Earth's 1:10m land around Japan and Korea
// (122–150° E, 24–46° N), from the npm package world-atlas 2.0.2 (land-10m.json, TopoJSON).
// Run from the repository root after the dashboard's npm install:
//   node satellite/data/make-land.js > satellite/data/land-japan.geojson
//
// Islands wholly inside the box are kept whole. Polygons that cross its edge (the Eurasian
// continent, Sakhalin, Taiwan...) are clipped exactly to the box, one edge at a time, and the
// pieces stitched back into closed rings along the edge, so there are no zero-width bridges
// along the box's sides: a point of sea inside the box is never nearer to a clip edge than to a
// real shore, which keeps `LandMask::distance_to_shore_m` honest.
const path = require("path");
const web = path.join(__dirname, "../../command/web/node_modules");
const topojson = require(path.join(web, "topojson-client"));
const land = require(path.join(web, "world-atlas/land-10m.json"));

const [west, south, east, north] = [122, 24, 150, 46];

// Twice the signed area of a ring (positive counter-clockwise in lon/lat).
function signedArea2(ring) {
  let a = 0;
  for (let i = 0, n = ring.length; i < n; i++) {
    const [x0, y0] = ring[i];
    const [x1, y1] = ring[(i + 1) % n];
    a += x0 * y1 - x1 * y0;
  }
  return a;
}

// Open ring (no repeated closing vertex), no consecutive duplicates.
function open(ring) {
  const out = [];
  for (const p of ring) {
    const q = out[out.length - 1];
    if (!q || q[0] !== p[0] || q[1] !== p[1]) out.push(p);
  }
  while (out.length > 1 && out[0][0] === out[out.length - 1][0] && out[0][1] === out[out.length - 1][1]) out.pop();
  return out;
}

// Clips a set of rings (outers counter-clockwise, holes clockwise: interior always on the left)
// to the half-plane where `inside(p)` holds, bounded by a line on which `along(p)` increases in
// the direction that keeps the half-plane on the left. Returns the clipped rings, same
// orientation convention.
function clipHalfPlane(rings, inside, cross, along) {
  const kept = [];
  const chains = []; // each {points, entry, exit}: a run of the ring inside the half-plane
  for (const ring of rings) {
    const n = ring.length;
    const ins = ring.map(inside);
    if (ins.every((b) => b)) {
      kept.push(ring);
      continue;
    }
    if (!ins.some((b) => b)) continue;
    // Start at a vertex that is outside, so every inside run is whole.
    const start = ins.indexOf(false);
    let chain = null;
    for (let k = 1; k <= n; k++) {
      const i = (start + k) % n;
      const prev = ring[(i - 1 + n) % n];
      const p = ring[i];
      if (ins[i] && !ins[(i - 1 + n) % n]) {
        const e = cross(prev, p);
        chain = [e, p];
      } else if (ins[i]) {
        chain.push(p);
      } else if (!ins[i] && ins[(i - 1 + n) % n]) {
        chain.push(cross(prev, p));
        chains.push(chain);
        chain = null;
      }
    }
  }
  if (chains.length === 0) return kept;
  // Along the boundary line the polygon's interior lies between pairs of crossings. Following
  // the boundary with the half-plane on the left, each chain's exit leads to the next entry.
  const ends = [];
  chains.forEach((c, idx) => {
    ends.push({ t: along(c[0]), kind: "entry", idx });
    ends.push({ t: along(c[c.length - 1]), kind: "exit", idx });
  });
  // From an exit, walk along the line in the direction of decreasing `along` (the direction
  // that keeps the half-plane on the left, see `edges`) to the nearest entry.
  const entries = ends.filter((e) => e.kind === "entry").sort((a, b) => a.t - b.t);
  const nextChain = chains.map((c) => {
    const t = along(c[c.length - 1]);
    let best = null;
    for (const e of entries) if (e.t <= t && (best === null || e.t > best.t)) best = e;
    return best === null ? null : best.idx;
  });
  const used = new Array(chains.length).fill(false);
  for (let s = 0; s < chains.length; s++) {
    if (used[s]) continue;
    const ring = [];
    let c = s;
    let guard = 0;
    while (c !== null && !used[c] && guard++ <= chains.length) {
      used[c] = true;
      ring.push(...chains[c]);
      c = nextChain[c];
    }
    const r = open(ring);
    if (r.length >= 3) kept.push(r);
  }
  return kept;
}

const lerp = (a, b, t) => [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t];
const atX = (x) => (a, b) => {
  const p = lerp(a, b, (x - a[0]) / (b[0] - a[0]));
  return [x, p[1]];
};
const atY = (y) => (a, b) => {
  const p = lerp(a, b, (y - a[1]) / (b[1] - a[1]));
  return [p[0], y];
};

// Each edge of the box as (inside, crossing, coordinate along the line that decreases in the
// direction of travel with the kept side on the left).
//   x >= west: kept side is +x; travelling with +x on the left means going -y, so along = y.
//   x <= east: kept side is -x; travelling with -x on the left means going +y, so along = -y.
//   y >= south: kept side is +y; travelling with +y on the left means going +x, so along = -x.
//   y <= north: kept side is -y; travelling with -y on the left means going -x, so along = x.
const edges = [
  [(p) => p[0] >= west, atX(west), (p) => p[1]],
  [(p) => p[0] <= east, atX(east), (p) => -p[1]],
  [(p) => p[1] >= south, atY(south), (p) => -p[0]],
  [(p) => p[1] <= north, atY(north), (p) => p[0]],
];

function inBoxStrict([x, y]) {
  return x > west && x < east && y > south && y < north;
}

function pointInRing([x, y], ring) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

const geometry = topojson.feature(land, land.objects.land);
const geometries = geometry.features ? geometry.features.map((f) => f.geometry) : [geometry.geometry];
const round = ([x, y]) => [+x.toFixed(4), +y.toFixed(4)];
const polygons = [];
for (const g of geometries) {
  for (const poly of g.type === "Polygon" ? [g.coordinates] : g.coordinates) {
    // Cheap rejection on the outer ring's bounding box.
    const xs = poly[0].map((p) => p[0]);
    const ys = poly[0].map((p) => p[1]);
    if (Math.max(...xs) < west || Math.min(...xs) > east || Math.max(...ys) < south || Math.min(...ys) > north) continue;
    // world-atlas follows d3's spherical convention (outer rings clockwise in lon/lat): orient
    // outers counter-clockwise and holes clockwise (RFC 7946), so the interior is on the left.
    let rings = poly.map((ring, k) => {
      const r = open(ring);
      const ccw = signedArea2(r) > 0;
      return (k === 0) === ccw ? r : r.slice().reverse();
    });
    if (rings[0].length < 3) continue;
    for (const [inside, cross, along] of edges) rings = clipHalfPlane(rings, inside, cross, along);
    const outers = rings.filter((r) => signedArea2(r) > 0);
    const holes = rings.filter((r) => signedArea2(r) < 0);
    const pieces = outers.map((o) => [o]);
    for (const h of holes) {
      const owner = pieces.find((p) => pointInRing(h[0], p[0]) || pointInRing(h[1], p[0]));
      if (owner) owner.push(h);
    }
    for (const piece of pieces) {
      // Drop slivers left on the box's edge (no vertex strictly inside, or no area).
      if (Math.abs(signedArea2(piece[0])) < 1e-9 || !piece[0].some(inBoxStrict)) continue;
      polygons.push(
        piece.map((ring) => {
          const r = open(ring.map(round));
          return [...r, r[0]];
        }),
      );
    }
  }
}

const out = {
  type: "FeatureCollection",
  features: [
    {
      type: "Feature",
      properties: {
        name: "Japan and Korea region (122-150 E, 24-46 N)",
        source: "Natural Earth 1:10m land (public domain) via world-atlas 2.0.2 land-10m.json",
      },
      geometry: { type: "MultiPolygon", coordinates: polygons },
    },
  ],
};
process.stdout.write(JSON.stringify(out) + "\n");
