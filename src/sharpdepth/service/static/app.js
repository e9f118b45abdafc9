// sharpdepth web page: one photo -> depth on the server, then everything else from the saved npz.
// The network runs once per photo (POST /v1/depth?format=npz); views, measurements, refocusing,
// the point cloud and downloads send that npz back, so they cost no forward pass.
import * as THREE from "three";
import { OrbitControls } from "/static/vendor/OrbitControls.js";
import { PLYLoader } from "/static/vendor/PLYLoader.js";

const $ = (id) => document.getElementById(id);
const state = { file: null, npz: null, depth: null, width: 0, height: 0, metric: false, stats: null, picks: [] };
const urls = {};
let viewer = null;
let renderBusy = false;
let renderAgain = null;

// ------------------------------------------------------------------ HTTP
async function api(path, fields) {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) {
    if (value) form.append(name, value, value.name || (name === "depth" ? "depth.npz" : "image"));
  }
  const headers = {};
  const key = $("apikey").value.trim();
  if (key) headers["X-API-Key"] = key;
  const response = await fetch(path, { method: "POST", body: form, headers });
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
  if (urls[name]) URL.revokeObjectURL(urls[name]);
  urls[name] = URL.createObjectURL(blob);
  img.src = urls[name];
  return new Promise((resolve) => { img.onload = resolve; img.onerror = resolve; });
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

function percentiles(data, metric) {
  const sample = [];
  const step = Math.max(1, Math.floor(data.length / 20000));
  for (let i = 0; i < data.length; i += step) {
    const v = data[i];
    if (Number.isFinite(v) && (!metric || v > 0)) sample.push(v);
  }
  sample.sort((a, b) => a - b);
  const at = (q) => sample[Math.min(sample.length - 1, Math.floor(q * (sample.length - 1)))];
  return { lo: at(0.02), hi: at(0.98) };
}

// ------------------------------------------------------------------ upload
async function onFile(file) {
  if (!file) return;
  state.file = file;
  state.picks = [];
  drawMarks();
  $("depthview").hidden = true;
  $("readout").textContent = "–";
  $("distance").textContent = "click two points";
  await showBlob($("photo"), "photo", file);
  $("photo").hidden = false;
  status("Computing depth…");
  try {
    const npz = await (await api("/v1/depth?format=npz", { image: file })).blob();
    state.npz = new File([npz], stem(file.name) + ".npz");
    const [npy, meta] = await Promise.all([
      api("/v1/depth?format=npy", { depth: state.npz }).then((r) => r.arrayBuffer()),
      api("/v1/depth?format=json", { depth: state.npz }).then((r) => r.json()),
    ]);
    const parsed = parseNpy(npy);
    Object.assign(state, { depth: parsed.data, width: parsed.width, height: parsed.height });
    state.metric = meta.output_kind === "metric_depth";
    state.stats = percentiles(state.depth, state.metric);
    await refreshView();
    $("depthview").hidden = false;
    for (const id of ["focus", "portrait", "dl-npz", "dl-png16", "dl-exr", "dl-glb"]) $(id).disabled = false;
    $("dl-glb").disabled = !state.metric;
    const focal = meta.focal_px ? `, focal ${meta.focal_px.toFixed(0)} px (${meta.focal_source})` : "";
    status(`${meta.model}: ${state.width}×${state.height}, ${state.metric ? "metric depth in metres" : "relative depth"}${focal}`);
    focusLabel();
    loadCloud();
  } catch (err) {
    status(`Could not compute depth: ${err.message}`, true);
  }
}

function stem(name) {
  return (name || "photo").replace(/\.[^.]*$/, "") || "photo";
}

async function refreshView() {
  const colormap = $("colormap").value;
  const view = await (await api(`/v1/view?colormap=${encodeURIComponent(colormap)}`, { depth: state.npz })).blob();
  await showBlob($("depthview"), "view", view);
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
  if (!state.depth || $("depthview").hidden) return;
  const [x, y] = pixelAt(event).map(Math.round);
  const value = state.depth[y * state.width + x];
  $("readout").dataset.pixel = `${x},${y}`; // which pixel the number is for
  if (!Number.isFinite(value) || (state.metric && value <= 0)) {
    $("readout").textContent = "no depth here";
  } else if (state.metric) {
    $("readout").textContent = formatMetres(value);
  } else {
    $("readout").textContent = `relative (disparity ${value.toFixed(3)})`;
  }
}

async function onPick(event) {
  if (!state.depth || $("depthview").hidden) return;
  if (state.picks.length === 2) state.picks = [];
  state.picks.push(pixelAt(event));
  drawMarks();
  if (state.picks.length < 2) {
    $("distance").textContent = "click a second point";
    return;
  }
  if (!state.metric) {
    $("distance").textContent = "needs a metric model (this one predicts relative depth)";
    return;
  }
  const pixels = state.picks.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`);
  $("distance").dataset.pixels = pixels.join(" ");
  const points = pixels.map((p) => `points=${p}`).join("&");
  try {
    const answer = await (await api(`/v1/measure?${points}`, { depth: state.npz })).json();
    $("distance").textContent = formatMetres(answer.distance_m);
  } catch (err) {
    $("distance").textContent = err.message;
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
  // Slider 0..1 runs from near to far, linear in inverse depth (as the blur is).
  const t = Number($("focus").value);
  const { lo, hi } = state.stats;
  if (state.metric) return { focus_m: 1 / (1 / lo + t * (1 / hi - 1 / lo)) };
  const target = hi - t * (hi - lo); // disparity: near = high
  let best = 0;
  let bestErr = Infinity;
  const step = Math.max(1, Math.floor(state.depth.length / 50000));
  for (let i = 0; i < state.depth.length; i += step) {
    const err = Math.abs(state.depth[i] - target);
    if (err < bestErr) { bestErr = err; best = i; }
  }
  return { focus_px: `${best % state.width},${Math.floor(best / state.width)}` };
}

function focusLabel() {
  if (!state.stats) return;
  const target = focusTarget();
  $("focuslabel").textContent = target.focus_m ? formatMetres(target.focus_m) : `pixel ${target.focus_px}`;
}

async function render(kind) {
  // One render at a time; a newer request replaces a waiting one.
  if (renderBusy) { renderAgain = kind; return; }
  renderBusy = true;
  const f = $("fnumber").value;
  try {
    let path;
    if (kind === "portrait") {
      path = `/v1/portrait?f_number=${f}`;
      status("Rendering portrait…");
    } else {
      const target = focusTarget();
      const focus = target.focus_m ? `focus_m=${target.focus_m.toFixed(4)}` : `focus_px=${target.focus_px}`;
      path = `/v1/dof?${focus}&f_number=${f}`;
      status(`Refocusing at ${$("focuslabel").textContent}, f/${f}…`);
    }
    const blob = await (await api(path, { image: state.file, depth: state.npz })).blob();
    await showBlob($("refocused"), "refocused", blob);
    status(kind === "portrait" ? `Portrait at f/${f}` : `Focused at ${$("focuslabel").textContent}, f/${f}`);
  } catch (err) {
    status(`Could not render: ${err.message}`, true);
  } finally {
    renderBusy = false;
    if (renderAgain) { const next = renderAgain; renderAgain = null; render(next); }
  }
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

async function loadCloud() {
  if (!state.metric) {
    $("viewer").textContent = "3D needs a metric model (this one predicts relative depth).";
    return;
  }
  if (!viewer) {
    if (!webglAvailable()) {
      $("viewer").textContent = "This browser has no WebGL: the 3D view is unavailable (download the .glb).";
      return;
    }
    viewer = makeViewer();
  }
  const stride = Math.max(1, Math.round(Math.sqrt((state.width * state.height) / 150000)));
  try {
    const response = await api(`/v1/pointcloud?format=ply&normals=false&stride=${stride}`, {
      image: state.file, depth: state.npz,
    });
    const geometry = new PLYLoader().parse(await response.arrayBuffer());
    geometry.computeBoundingSphere();
    const { center, radius } = geometry.boundingSphere;
    const material = new THREE.PointsMaterial({ size: radius * 0.006, vertexColors: geometry.hasAttribute("color") });
    if (viewer.points) {
      viewer.scene.remove(viewer.points);
      viewer.points.geometry.dispose();
    }
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
  try {
    if (kind === "npz") return saveAs(state.npz, state.npz.name);
    const response = kind === "glb"
      ? await api("/v1/pointcloud?format=glb", { image: state.file, depth: state.npz })
      : await api(`/v1/depth?format=${kind}`, { depth: state.npz });
    saveAs(await response.blob(), filename(response, `${stem(state.file.name)}.${kind}`));
  } catch (err) {
    status(`Download failed: ${err.message}`, true);
  }
}

// ------------------------------------------------------------------ wiring
async function init() {
  try {
    const info = await (await fetch("/v1/models", { headers: { Accept: "application/json" } })).json();
    $("model").textContent = info.served ? `model: ${info.served}` : "";
    for (const name of info.colormaps || ["inferno"]) {
      const option = document.createElement("option");
      option.textContent = name;
      option.selected = name === info.default_colormap;
      $("colormap").appendChild(option);
    }
  } catch (_) {
    $("colormap").appendChild(new Option("inferno"));
  }
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
  $("colormap").addEventListener("change", () => state.npz && refreshView().catch((err) => status(err.message, true)));
  $("stage").addEventListener("mousemove", onHover);
  $("stage").addEventListener("click", onPick);
  $("focus").addEventListener("input", focusLabel);
  $("focus").addEventListener("change", () => state.npz && render("dof"));
  $("fnumber").addEventListener("change", () => state.npz && $("refocused").getAttribute("src") && render("dof"));
  $("portrait").addEventListener("click", () => state.npz && render("portrait"));
  for (const kind of ["npz", "png16", "exr", "glb"]) $(`dl-${kind}`).addEventListener("click", () => download(kind));
  window.addEventListener("resize", drawMarks);
}

init();
