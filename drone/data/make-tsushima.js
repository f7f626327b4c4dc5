// Regenerates tsushima.geojson: the land polygons of the Tsushima islands (Nagasaki, Japan)
// from Natural Earth's 1:10m land, as published in the npm package world-atlas 2.0.2
// (land-10m.json, TopoJSON). Run from the repository root after the dashboard's npm install:
//   node drone/data/make-tsushima.js > drone/data/tsushima.geojson
const path = require("path");
const web = path.join(__dirname, "../../command/web/node_modules");
const topojson = require(path.join(web, "topojson-client"));
const land = require(path.join(web, "world-atlas/land-10m.json"));

// Every land polygon with a vertex in this box; whole polygons, so each stays a closed island.
const [west, south, east, north] = [129.1, 34.0, 129.6, 34.8];
const geometry = topojson.feature(land, land.objects.land);
const geometries = geometry.features ? geometry.features.map((f) => f.geometry) : [geometry.geometry];
const polygons = [];
for (const g of geometries) {
  for (const poly of g.type === "Polygon" ? [g.coordinates] : g.coordinates) {
    if (poly[0].some(([x, y]) => x > west && x < east && y > south && y < north)) {
      // Six decimals (0.1 m) are far below the source's quantization (about 330 m × 190 m here).
      polygons.push(poly.map((ring) => ring.map(([x, y]) => [+x.toFixed(6), +y.toFixed(6)])));
    }
  }
}
const out = {
  type: "FeatureCollection",
  features: [
    {
      type: "Feature",
      properties: {
        name: "Tsushima",
        source: "Natural Earth 1:10m land (public domain) via world-atlas 2.0.2 land-10m.json",
      },
      geometry: { type: "MultiPolygon", coordinates: polygons },
    },
  ],
};
process.stdout.write(JSON.stringify(out) + "\n");
