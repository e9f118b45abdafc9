// sharpdepth web page: one photo -> depth on the server, then everything else from the saved npz.
// The network runs once per photo (POST /v1/depth?format=npz); views, measurements, refocusing,
// the point cloud and downloads send that npz back, so they cost no forward pass.
//
// Everything that belongs to one photo lives in one `state` object with its own AbortController.
// A new upload aborts the old photo's requests and replaces the object, and every answer is used
// only while its photo is still the current one: a late answer for an older photo (two quick
// uploads, a portrait still rendering) can never mix with the newer photo.
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
    if (e.dataTransfer.files.length) onFile(e.dataTransfer.files[0]);
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
  window.addEventListener("resize", drawMarks);
}

init();
