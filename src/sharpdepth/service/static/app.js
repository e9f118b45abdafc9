// sharpdepth web page: one photo -> depth on the server, then everything else from the saved npz.
// The network runs once per photo (POST /v1/depth?format=npz); views, measurements, refocusing,
// the point cloud and downloads send that npz back, so they cost no forward pass.
//
// Everything that belongs to one photo lives in one `state` object with its own AbortController.
// A new upload aborts the old photo's requests and replaces the object, and every answer is used
// only while its photo is still the current one: a late answer for an older photo (two quick
// uploads, a portrait still rendering) can never mix with the newer photo.
//
// The "3D splat" panel shows a 3-D Gaussian scene (.ply in the 3DGS layout): one the user opens, or
// one made from the current photo by POST /v1/splat. It is drawn by the vendored Gaussian-splat
// viewer (loaded on first use), with its own WebGL canvas, orbit controls and the page's three.js.
import * as THREE from "three";
import { OrbitControls } from "/static/vendor/OrbitControls.js";
import { PLYLoader } from "/static/vendor/PLYLoader.js";

const $ = (id) => document.getElementById(id);
const PHOTO_CONTROLS = ["focus", "portrait", "dl-npz", "dl-png16", "dl-exr", "dl-glb"];
const KEY_NEEDED = "This server needs an API key: type it in the API key field (it is sent with every request).";
const urls = {};
const intro = $("status").textContent;
let state = photoState(null);
let viewer = null;
let rendering = null; // the refocus or portrait in flight: { kind, what, controller, started, pixels, timer }
let nextRender = null; // the kind asked for while one was in flight (the newest request wins)
let userPickedColormap = false;
let splatModel = "sharp"; // what /v1/splat is asked for (the server's /v1/models says which)
let splat = null; // the scene on show: { blob, name, owner } (owner: the photo state it was made from, or null)
let splatJob = 0; // counts scenes asked for: the answer or load of an older one is dropped
let splatViewer = null; // { viewer, renderer, camera, onResize }
const SPLAT_VIEWER_MODULE = "/static/vendor/gaussian-splats-3d/gaussian-splats-3d.module.js";
const secondsPerPixel = {}; // how long the last render of each kind took, for the progress estimate

function photoState(file) {
  return {
    file, controller: new AbortController(), ready: false,
    npz: null, depth: null, width: 0, height: 0, metric: false, isDepth: false, range: null, picks: [],
    shown: null, // the kind of render on screen ("dof" or "portrait"): a new aperture redoes it
  };
}

// ------------------------------------------------------------------ HTTP
function authHeaders() {
  const key = $("apikey").value.trim();
  return key ? { "X-API-Key": key } : {};
}

async function api(path, fields, signal) {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) {
    if (value) form.append(name, value, value.name || (name === "depth" ? "depth.npz" : "image"));
  }
  const response = await fetch(path, { method: "POST", body: form, headers: authHeaders(), signal });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function status(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function showBlob(img, name, blob) {
  // Resolves to whether the browser could show the picture.
  if (urls[name]) URL.revokeObjectURL(urls[name]);
  urls[name] = URL.createObjectURL(blob);
  img.src = urls[name];
  return new Promise((resolve) => { img.onload = () => resolve(true); img.onerror = () => resolve(false); });
}

function forgetBlob(img, name) {
  img.removeAttribute("src");
  if (urls[name]) URL.revokeObjectURL(urls[name]);
  delete urls[name];
}

// ------------------------------------------------------------------ .npy (float32, C order)
function parseNpy(buffer) {
  const bytes = new Uint8Array(buffer);
  const major = bytes[6];
  const view = new DataView(buffer);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder("latin1").decode(bytes.subarray(start, start + headerLen));
  if (!header.includes("'<f4'")) throw new Error("depth array is not float32");
  const shape = header.match(/'shape':\s*\((\d+),\s*(\d+)\)/);
  const height = Number(shape[1]);
  const width = Number(shape[2]);
  const offset = start + headerLen;
  const data = new Float32Array(buffer.slice(offset, offset + 4 * width * height));
  return { data, width, height };
}

function nearness(value, isDepth) {
  // Larger = nearer, linear in inverse depth (as lens blur is): depth maps are inverted, disparity is already.
  if (!Number.isFinite(value)) return NaN;
  if (!isDepth) return value;
  return value > 0 ? 1 / value : NaN;
}

function nearnessRange(data, isDepth) {
  // The nearest and farthest part of the photo: 98th and 2nd percentiles of nearness (outliers ignored).
  const sample = [];
  const step = Math.max(1, Math.floor(data.length / 20000));
  for (let i = 0; i < data.length; i += step) {
    const v = nearness(data[i], isDepth);
    if (Number.isFinite(v)) sample.push(v);
  }
  sample.sort((a, b) => a - b);
  const at = (q) => sample[Math.min(sample.length - 1, Math.floor(q * (sample.length - 1)))];
  return { near: at(0.98), far: at(0.02) };
}

// ------------------------------------------------------------------ upload
async function onFile(file) {
  if (!file) return;
  state.controller.abort(); // the previous photo's answers are of no use any more
  cancelRender();
  const s = (state = photoState(file));
  forgetPhotoResults();
  $("make-splat").disabled = false;
  const started = performance.now();
  const counting = setInterval(() => {
    if (s === state) status(`Computing depth… ${Math.floor((performance.now() - started) / 1000)} s`);
  }, 1000);
  status("Computing depth…");
  try {
    const shown = await showBlob($("photo"), "photo", file);
    if (s !== state) return;
    $("photo").hidden = !shown;
    const signal = s.controller.signal;
    const npz = await (await api("/v1/depth?format=npz", { image: file }, signal)).blob();
    const saved = new File([npz], stem(file.name) + ".npz");
    const [npy, meta] = await Promise.all([
      api("/v1/depth?format=npy", { depth: saved }, signal).then((r) => r.arrayBuffer()),
      api("/v1/depth?format=json", { depth: saved }, signal).then((r) => r.json()),
    ]);
    const parsed = parseNpy(npy);
    const metric = meta.output_kind === "metric_depth";
    const isDepth = meta.output_kind !== "relative_disparity"; // numbers grow with distance
    Object.assign(s, { npz: saved, depth: parsed.data, width: parsed.width, height: parsed.height, metric, isDepth });
    s.range = nearnessRange(s.depth, isDepth);
    await refreshView(s);
    if (s !== state) return;
    s.ready = true;
    $("depthview").hidden = false;
    setPhotoControls(true);
    const focal = meta.focal_px ? `, focal ${meta.focal_px.toFixed(0)} px (${meta.focal_source})` : "";
    status(`${meta.model}: ${s.width}×${s.height}, ${metric ? "metric depth in metres" : "relative depth"}${focal}`);
    focusLabel();
    loadCloud(s);
  } catch (err) {
    if (s !== state) return; // a newer photo took over: its own status stands
    status(`Could not compute depth: ${err.message}`, true);
    showNote("No 3D view: the depth of this photo could not be computed.");
  } finally {
    clearInterval(counting);
  }
}

function forgetPhotoResults() {
  // Nothing of the previous photo stays on screen or clickable while (or if) the new one fails.
  setPhotoControls(false);
  $("depthview").hidden = true;
  forgetBlob($("refocused"), "refocused");
  $("readout").textContent = "–";
  $("distance").textContent = "click two points";
  $("focuslabel").textContent = "";
  drawMarks();
  clearCloud("The 3D view appears here once the depth is computed.");
  if (splat && splat.owner) closeSplat("The splat of the previous photo is gone: make one from this photo.");
}

function setPhotoControls(enabled) {
  for (const id of PHOTO_CONTROLS) $(id).disabled = !enabled;
  if (enabled) $("dl-glb").disabled = !state.metric;
}

function stem(name) {
  return (name || "photo").replace(/\.[^.]*$/, "") || "photo";
}

async function refreshView(s) {
  const colormap = $("colormap").value;
  const query = colormap ? `?colormap=${encodeURIComponent(colormap)}` : "";
  const view = await (await api(`/v1/view${query}`, { depth: s.npz }, s.controller.signal)).blob();
  if (s === state) await showBlob($("depthview"), "view", view);
}

// ------------------------------------------------------------------ hover and measure
function pixelAt(event) {
  const rect = $("depthview").getBoundingClientRect();
  const x = ((event.clientX - rect.left) / rect.width) * state.width - 0.5;
  const y = ((event.clientY - rect.top) / rect.height) * state.height - 0.5;
  return [Math.min(Math.max(x, 0), state.width - 1), Math.min(Math.max(y, 0), state.height - 1)];
}

function formatMetres(m) {
  if (!Number.isFinite(m)) return "–";
  if (m < 1) return `${(m * 100).toFixed(1)} cm`;
  return `${m.toFixed(m < 10 ? 2 : 1)} m`;
}

function onHover(event) {
  if (!state.ready) return;
  const [x, y] = pixelAt(event).map(Math.round);
  const value = state.depth[y * state.width + x];
  $("readout").dataset.pixel = `${x},${y}`; // which pixel the number is for
  if (!Number.isFinite(nearness(value, state.isDepth))) {
    $("readout").textContent = "no depth here";
  } else if (state.metric) {
    $("readout").textContent = formatMetres(value);
  } else if (state.isDepth) {
    $("readout").textContent = `relative (depth ${value.toFixed(3)}, up to scale)`;
  } else {
    $("readout").textContent = `relative (disparity ${value.toFixed(3)})`;
  }
}

async function onPick(event) {
  if (!state.ready) return;
  const s = state;
  if (s.picks.length === 2) s.picks = [];
  s.picks.push(pixelAt(event));
  drawMarks();
  if (s.picks.length < 2) {
    $("distance").textContent = "click a second point";
    return;
  }
  if (!s.metric) {
    $("distance").textContent = "needs a metric model (this one predicts relative depth)";
    return;
  }
  const pixels = s.picks.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`);
  $("distance").dataset.pixels = pixels.join(" ");
  const points = pixels.map((p) => `points=${p}`).join("&");
  try {
    const answer = await (await api(`/v1/measure?${points}`, { depth: s.npz }, s.controller.signal)).json();
    if (s === state) $("distance").textContent = formatMetres(answer.distance_m);
  } catch (err) {
    if (s === state) $("distance").textContent = err.message;
  }
}

function drawMarks() {
  const canvas = $("marks");
  const img = $("depthview");
  canvas.width = img.clientWidth || 1;
  canvas.height = img.clientHeight || 1;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const scale = state.width ? canvas.width / state.width : 1;
  const pts = state.picks.map(([x, y]) => [(x + 0.5) * scale, (y + 0.5) * scale]);
  ctx.strokeStyle = "#00e5ff";
  ctx.fillStyle = "#00e5ff";
  ctx.lineWidth = 2;
  if (pts.length === 2) {
    ctx.beginPath();
    ctx.moveTo(...pts[0]);
    ctx.lineTo(...pts[1]);
    ctx.stroke();
  }
  for (const [x, y] of pts) {
    ctx.beginPath();
    ctx.arc(x, y, 5, 0, 2 * Math.PI);
    ctx.fill();
  }
}

// ------------------------------------------------------------------ refocus and portrait
function focusTarget() {
  // Slider 0..1 runs from near to far, linear in inverse depth (as the blur is), between the
  // nearest and farthest part of the map. Returns the request's query and a label for people.
  const t = Number($("focus").value);
  const { near, far } = state.range;
  const target = near + t * (far - near);
  if (state.metric) {
    const metres = 1 / target;
    return { query: `focus_m=${metres.toFixed(4)}`, label: formatMetres(metres) };
  }
  // Relative depth has no unit: focus on the pixel nearest the target and say where it lies
  // between the nearest (0 %) and the farthest (100 %) part of the photo.
  let best = 0;
  let bestErr = Infinity;
  const step = Math.max(1, Math.floor(state.depth.length / 50000));
  for (let i = 0; i < state.depth.length; i += step) {
    const err = Math.abs(nearness(state.depth[i], state.isDepth) - target);
    if (err < bestErr) { bestErr = err; best = i; }
  }
  const pixel = `${best % state.width},${Math.floor(best / state.width)}`;
  return { query: `focus_px=${pixel}`, label: `relative depth ${Math.round(t * 100)} %`, pixel };
}

function focusLabel() {
  if (!state.ready) return;
  const target = focusTarget();
  const label = $("focuslabel");
  label.textContent = target.label;
  label.title = state.metric ? "focus distance" : "0 % = the nearest part of the photo, 100 % = the farthest";
  if (target.pixel) label.dataset.pixel = target.pixel; else delete label.dataset.pixel;
}

async function render(kind) {
  // One render at a time; a request made meanwhile waits, and a newer one replaces it.
  if (!state.ready) return;
  if (rendering) { nextRender = kind; return; }
  const s = state;
  const f = $("fnumber").value;
  const job = { kind, controller: new AbortController(), started: performance.now(), pixels: s.width * s.height };
  let path;
  if (kind === "portrait") {
    path = `/v1/portrait?f_number=${f}`;
    job.what = "Rendering portrait";
    job.done = `Portrait at f/${f}`;
  } else {
    const target = focusTarget();
    path = `/v1/dof?${target.query}&f_number=${f}`;
    job.what = `Refocusing at ${target.label}, f/${f}`;
    job.done = `Focused at ${target.label}, f/${f}`;
  }
  rendering = job;
  showProgress(job);
  status(`${job.what}…`);
  try {
    const blob = await (await api(path, { image: s.file, depth: s.npz }, job.controller.signal)).blob();
    if (rendering !== job) return; // cancelled, or a new photo came
    await showBlob($("refocused"), "refocused", blob);
    s.shown = kind;
    const seconds = (performance.now() - job.started) / 1000;
    secondsPerPixel[kind] = seconds / job.pixels;
    status(`${job.done} (${seconds.toFixed(1)} s)`);
  } catch (err) {
    if (rendering === job) status(`Could not render: ${err.message}`, true);
  } finally {
    if (rendering === job) {
      rendering = null;
      hideProgress(job);
    }
    if (!rendering && nextRender && state.ready) {
      const next = nextRender;
      nextRender = null;
      render(next);
    }
  }
}

function cancelRender(message) {
  nextRender = null;
  if (!rendering) return;
  const job = rendering;
  rendering = null;
  job.controller.abort();
  hideProgress(job);
  if (message) status(message);
}

function showProgress(job) {
  // The server sends no progress of its own: show the time spent, and once a render of this kind
  // has finished, an estimate from its time per pixel.
  const tick = () => {
    const seconds = (performance.now() - job.started) / 1000;
    const bar = $("progressbar");
    let text = `${job.what}… ${Math.floor(seconds)} s`;
    if (secondsPerPixel[job.kind]) {
      const expected = secondsPerPixel[job.kind] * job.pixels;
      bar.max = 1;
      bar.value = Math.min(0.95, seconds / expected);
      const left = expected - seconds;
      text += left >= 1 ? `, about ${Math.ceil(left)} s left` : ", taking longer than last time";
    } else {
      bar.removeAttribute("value"); // indeterminate
    }
    $("elapsed").textContent = text;
  };
  tick();
  job.timer = setInterval(tick, 250);
  $("progress").hidden = false;
}

function hideProgress(job) {
  clearInterval(job.timer);
  $("progress").hidden = true;
}

// ------------------------------------------------------------------ 3D view
function makeViewer() {
  const host = $("viewer");
  const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  renderer.outputColorSpace = THREE.LinearSRGBColorSpace; // PLY colours are already sRGB
  renderer.setPixelRatio(window.devicePixelRatio || 1);
  renderer.setSize(host.clientWidth, host.clientHeight);
  host.appendChild(renderer.domElement);
  const scene = new THREE.Scene();
  scene.background = new THREE.Color(0x111111);
  const camera = new THREE.PerspectiveCamera(50, host.clientWidth / host.clientHeight, 0.01, 1000);
  const controls = new OrbitControls(camera, renderer.domElement);
  controls.enableDamping = false;
  const draw = () => renderer.render(scene, camera);
  controls.addEventListener("change", draw);
  window.addEventListener("resize", () => {
    renderer.setSize(host.clientWidth, host.clientHeight);
    camera.aspect = host.clientWidth / host.clientHeight;
    camera.updateProjectionMatrix();
    draw();
  });
  draw();
  return { renderer, scene, camera, controls, draw, points: null };
}

function webglAvailable() {
  try {
    const canvas = document.createElement("canvas");
    return Boolean(canvas.getContext("webgl2") || canvas.getContext("webgl"));
  } catch (_) {
    return false;
  }
}

function showNote(text) {
  // A note over the 3D view replaces the (then hidden) canvas; no note shows the canvas.
  const note = $("viewernote");
  note.textContent = text;
  note.hidden = !text;
  if (viewer) viewer.renderer.domElement.hidden = Boolean(text);
}

function clearCloud(note) {
  if (viewer && viewer.points) {
    viewer.scene.remove(viewer.points);
    viewer.points.geometry.dispose();
    viewer.points.material.dispose();
    viewer.points = null;
    viewer.draw();
  }
  showNote(note);
}

async function loadCloud(s) {
  if (!s.metric) {
    showNote("3D needs a metric model (this one predicts relative depth).");
    return;
  }
  if (!viewer) {
    if (!webglAvailable()) {
      showNote("This browser has no WebGL: the 3D view is unavailable (download the .glb).");
      return;
    }
    viewer = makeViewer();
  }
  showNote("");
  const stride = Math.max(1, Math.round(Math.sqrt((s.width * s.height) / 150000)));
  try {
    const response = await api(`/v1/pointcloud?format=ply&normals=false&stride=${stride}`, {
      image: s.file, depth: s.npz,
    }, s.controller.signal);
    const buffer = await response.arrayBuffer();
    if (s !== state) return;
    const geometry = new PLYLoader().parse(buffer);
    geometry.computeBoundingSphere();
    const { center, radius } = geometry.boundingSphere;
    const material = new THREE.PointsMaterial({ size: radius * 0.006, vertexColors: geometry.hasAttribute("color") });
    clearCloud("");
    viewer.points = new THREE.Points(geometry, material);
    viewer.scene.add(viewer.points);
    // Start where the photo was taken (the origin), looking at the middle of the scene.
    viewer.camera.position.set(0, 0, 0.001);
    viewer.controls.target.copy(center);
    viewer.camera.near = radius / 1000;
    viewer.camera.far = radius * 20;
    viewer.camera.updateProjectionMatrix();
    viewer.controls.update();
    viewer.draw();
  } catch (err) {
    if (s !== state) return;
    showNote(`No 3D view: ${err.message}`);
    status(`Could not build the 3D view: ${err.message}`, true);
  }
}

// ------------------------------------------------------------------ 3D splat (3-D Gaussians)
function splatNote(text, viewerState) {
  const note = $("splatnote");
  note.textContent = text;
  note.hidden = !text;
  $("splatviewer").dataset.state = viewerState;
  if (splatViewer) splatViewer.renderer.domElement.hidden = Boolean(text);
}

function plyVertexInfo(buffer) {
  // Number of Gaussians and the middle of the scene (median of the centres), read from a binary
  // little-endian PLY's vertex element: where the orbit turns around.
  const head = new TextDecoder("latin1").decode(new Uint8Array(buffer, 0, Math.min(buffer.byteLength, 65536)));
  const end = head.indexOf("end_header\n");
  if (!head.startsWith("ply\n") || end < 0) throw new Error("this is not a PLY file");
  if (!head.includes("format binary_little_endian 1.0")) throw new Error("only binary little-endian PLY files are shown");
  const sizes = { char: 1, uchar: 1, int8: 1, uint8: 1, short: 2, ushort: 2, int16: 2, uint16: 2,
    int: 4, uint: 4, int32: 4, uint32: 4, float: 4, float32: 4, double: 8, float64: 8 };
  let count = -1;
  let stride = 0;
  const offsets = {};
  let inVertex = false;
  for (const line of head.slice(0, end).split("\n")) {
    const parts = line.trim().split(/\s+/);
    if (parts[0] === "element") {
      if (inVertex) break; // the vertex element is over
      inVertex = parts[1] === "vertex";
      if (inVertex) count = Number(parts[2]);
      else if (count < 0) throw new Error("the vertex element must come first");
    } else if (parts[0] === "property" && inVertex) {
      if (!(parts[1] in sizes)) throw new Error(`unsupported PLY property ${parts.slice(1).join(" ")}`);
      if (parts[1] === "float" || parts[1] === "float32") offsets[parts[2]] = stride;
      stride += sizes[parts[1]];
    }
  }
  for (const name of ["x", "y", "z", "f_dc_0", "opacity", "scale_0", "rot_0"]) {
    if (!(name in offsets)) throw new Error(`not a 3D Gaussian Splatting PLY (no float ${name})`);
  }
  const start = end + "end_header\n".length;
  if (!(count > 0) || start + count * stride > buffer.byteLength) throw new Error("the PLY is empty or truncated");
  const view = new DataView(buffer, start);
  const step = Math.max(1, Math.floor(count / 20000));
  const axes = [[], [], []];
  for (let i = 0; i < count; i += step) {
    ["x", "y", "z"].forEach((name, k) => {
      const v = view.getFloat32(i * stride + offsets[name], true);
      if (Number.isFinite(v)) axes[k].push(v);
    });
  }
  const median = (a) => { a.sort((p, q) => p - q); return a.length ? a[a.length >> 1] : 0; };
  return { count, center: axes.map(median) };
}

async function makeSplatViewer(lib, center) {
  // Our own renderer and camera (OpenCV frame: y down, the photo's camera at the origin looking at +z),
  // the viewer's orbit controls around the middle of the scene.
  const host = $("splatviewer");
  const renderer = new THREE.WebGLRenderer({ antialias: false, preserveDrawingBuffer: true });
  renderer.setPixelRatio(window.devicePixelRatio || 1);
  renderer.setSize(host.clientWidth, host.clientHeight);
  renderer.setClearColor(0x111111, 1);
  host.appendChild(renderer.domElement);
  const camera = new THREE.PerspectiveCamera(50, host.clientWidth / host.clientHeight, 0.01, 1000);
  camera.up.set(0, -1, 0);
  camera.position.set(0, 0, 0);
  camera.lookAt(...center);
  const viewer = new lib.Viewer({
    renderer, camera, rootElement: host, selfDrivenMode: true, useBuiltInControls: true,
    cameraUp: [0, -1, 0], initialCameraLookAt: center,
    sharedMemoryForWorkers: false, // shared memory would need a cross-origin-isolated page
    gpuAcceleratedSort: false, dynamicScene: false,
    renderMode: lib.RenderMode.OnChange, sceneRevealMode: lib.SceneRevealMode.Instant, logLevel: lib.LogLevel.None,
  });
  const onResize = () => {
    renderer.setSize(host.clientWidth, host.clientHeight);
    camera.aspect = host.clientWidth / host.clientHeight;
    camera.updateProjectionMatrix();
    viewer.forceRenderNextFrame();
  };
  window.addEventListener("resize", onResize);
  return { viewer, renderer, camera, onResize };
}

async function disposeSplatViewer() {
  const current = splatViewer;
  splatViewer = null;
  if (!current) return;
  window.removeEventListener("resize", current.onResize);
  try {
    await current.viewer.dispose();
  } catch (_) { /* a scene still loading is aborted: nothing else to free */ }
  current.renderer.dispose();
  current.renderer.forceContextLoss(); // browsers keep few WebGL contexts: give this one back now
  current.renderer.domElement.remove();
}

async function showSplat(blob, name, owner) {
  // Show a scene and offer it for download; any older scene, or one still loading, is dropped.
  const job = ++splatJob;
  splat = { blob, name, owner };
  $("dl-ply").disabled = false;
  $("splatinfo").textContent = "";
  await disposeSplatViewer();
  let info;
  try {
    info = plyVertexInfo(await blob.arrayBuffer());
  } catch (err) {
    if (job !== splatJob) return;
    splatNote(`Cannot show ${name}: ${err.message}`, "error");
    return;
  }
  if (job !== splatJob) return;
  $("splatinfo").textContent = `${name}: ${info.count.toLocaleString("en")} Gaussians`;
  $("splatviewer").dataset.gaussians = String(info.count);
  if (!webglAvailable()) {
    splatNote("This browser has no WebGL: the splat viewer is unavailable (download the .ply to view it elsewhere).",
      "no-webgl");
    return;
  }
  splatNote("Loading the splat…", "loading");
  const url = URL.createObjectURL(blob);
  try {
    const lib = await import(SPLAT_VIEWER_MODULE);
    if (job !== splatJob) return;
    splatViewer = await makeSplatViewer(lib, info.center);
    await splatViewer.viewer.addSplatScene(url, { format: lib.SceneFormat.Ply, showLoadingUI: false, progressiveLoad: false });
    if (job !== splatJob) return;
    splatViewer.viewer.start();
    splatViewer.viewer.forceRenderNextFrame(); // its "render on change" keeps one frame count for all viewers
    splatNote("", "shown");
  } catch (err) {
    if (job !== splatJob) return;
    await disposeSplatViewer();
    splatNote(`Cannot show ${name}: ${err.message || err}`, "error");
  } finally {
    URL.revokeObjectURL(url);
  }
}

function closeSplat(note) {
  splatJob++;
  splat = null;
  $("dl-ply").disabled = true;
  $("splatinfo").textContent = "";
  delete $("splatviewer").dataset.gaussians;
  disposeSplatViewer();
  splatNote(note, "empty");
}

async function makeSplat() {
  // The current photo's Gaussians from the server (the network runs once more, on the splat model).
  const s = state;
  if (!s.file) return;
  const job = ++splatJob;
  $("make-splat").disabled = true;
  splatNote(`Making the 3-D Gaussians of ${s.file.name} (${splatModel})…`, "loading");
  status(`Making the splat (${splatModel})…`);
  try {
    const response = await api(`/v1/splat?model=${encodeURIComponent(splatModel)}`, { image: s.file },
      s.controller.signal);
    const blob = await response.blob();
    if (s !== state || job !== splatJob) return;
    status(`Splat of ${s.file.name} made by ${splatModel}.`);
    await showSplat(blob, filename(response, `${stem(s.file.name)}.ply`), s);
  } catch (err) {
    if (s !== state || job !== splatJob) return;
    splatNote(`No splat: ${err.message}`, "error");
    status(`Could not make the splat: ${err.message}`, true);
  } finally {
    if (s === state) $("make-splat").disabled = false;
  }
}

function openPly(file) {
  if (file) showSplat(file, file.name, null);
}

// ------------------------------------------------------------------ downloads
function saveAs(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

function filename(response, fallback) {
  const match = /filename="([^"]+)"/.exec(response.headers.get("content-disposition") || "");
  return match ? match[1] : fallback;
}

async function download(kind) {
  const s = state;
  if (!s.ready) return;
  try {
    if (kind === "npz") return saveAs(s.npz, s.npz.name);
    const signal = s.controller.signal;
    const response = kind === "glb"
      ? await api("/v1/pointcloud?format=glb", { image: s.file, depth: s.npz }, signal)
      : await api(`/v1/depth?format=${kind}`, { depth: s.npz }, signal);
    const blob = await response.blob();
    if (s === state) saveAs(blob, filename(response, `${stem(s.file.name)}.${kind}`));
  } catch (err) {
    if (s === state) status(`Download failed: ${err.message}`, true);
  }
}

// ------------------------------------------------------------------ server info (behind the key, like all of /v1)
async function loadInfo() {
  let info = null;
  let unauthorized = false;
  try {
    const response = await fetch("/v1/models", { headers: { Accept: "application/json", ...authHeaders() } });
    unauthorized = response.status === 401;
    if (response.ok) info = await response.json();
  } catch (_) { /* unreachable or not JSON: keep the defaults */ }
  $("model").textContent = info && info.served ? `model: ${info.served}` : "";
  fillColormaps(info && info.colormaps, info && info.default_colormap);
  if (info && info.splat_model) splatModel = info.splat_model;
  if (unauthorized) status(KEY_NEEDED, true);
  else if (!state.file) status(intro);
}

function fillColormaps(names, preferred) {
  const select = $("colormap");
  const current = select.value;
  const list = names && names.length ? names : ["inferno"];
  select.replaceChildren(...list.map((name) => new Option(name, name)));
  if (userPickedColormap && list.includes(current)) select.value = current;
  else if (list.includes(preferred)) select.value = preferred;
}

// ------------------------------------------------------------------ wiring
function init() {
  loadInfo();
  $("apikey").addEventListener("change", loadInfo);
  $("upload").addEventListener("change", (e) => onFile(e.target.files[0]));
  const drop = $("drop");
  for (const name of ["dragenter", "dragover"]) {
    document.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  document.addEventListener("dragleave", () => drop.classList.remove("over"));
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const file = e.dataTransfer.files[0];
    if (file && /\.ply$/i.test(file.name)) openPly(file); // a scene goes to the splat viewer
    else if (file) onFile(file);
  });
  $("colormap").addEventListener("change", () => {
    userPickedColormap = true;
    const s = state;
    if (s.ready) refreshView(s).catch((err) => { if (s === state) status(err.message, true); });
  });
  $("stage").addEventListener("mousemove", onHover);
  $("stage").addEventListener("click", onPick);
  $("focus").addEventListener("input", focusLabel);
  $("focus").addEventListener("change", () => render("dof"));
  $("fnumber").addEventListener("change", () => state.shown && render(state.shown));
  $("portrait").addEventListener("click", () => render("portrait"));
  $("cancel").addEventListener("click", () => {
    const what = rendering && rendering.kind === "portrait" ? "Portrait" : "Refocusing";
    cancelRender(`${what} cancelled.`);
  });
  for (const kind of ["npz", "png16", "exr", "glb"]) $(`dl-${kind}`).addEventListener("click", () => download(kind));
  $("plyfile").addEventListener("change", (e) => openPly(e.target.files[0]));
  $("make-splat").addEventListener("click", makeSplat);
  $("dl-ply").addEventListener("click", () => splat && saveAs(splat.blob, splat.name));
  window.addEventListener("resize", drawMarks);
  // The splat viewer listens for its shortcut keys (info panel, focal length, ...) on the window:
  // what is typed into the page's own fields (the API key) must not reach it.
  document.addEventListener("keydown", (e) => {
    if (e.target instanceof Element && e.target.matches("input, select, textarea")) e.stopPropagation();
  });
}

init();
