// Leaflet.markercluster is a UMD plugin that extends the global `L`; bundled, there is no
// global, so it is set here, in a module imported before the plugin (imports run in order).
import L from 'leaflet';

(globalThis as unknown as { L: typeof L }).L = L;

export default L;
