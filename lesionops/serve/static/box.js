// The lesion box, shared by the clinician page (region to classify) and the review page (the expert
// fixes the box). The user drags on the shown photo with a mouse, a pen or a finger (pointer events;
// `touch-action: none` on the stage keeps the drag from scrolling the page), or uses the keyboard:
// arrow keys move the box, Shift+arrows resize it, Delete clears it.
//
// The box is kept in the image's own pixel coordinates (what the API expects), converted from the
// displayed size on every pointer event, and drawn back as percentages, so it stays on the lesion
// when the layout changes (phone rotation, window resize).

const MIN_SIZE_PX = 4; // smaller drags are taps, not boxes

export const boxText = (box) =>
  box ? `${box[0]}, ${box[1]} → ${box[2]}, ${box[3]} (${box[2] - box[0]} × ${box[3] - box[1]} px)` : "whole image";

export class BoxStage {
  /**
   * @param {HTMLElement} stage focusable element wrapping `img` (position: relative)
   * @param {HTMLImageElement} img the photo
   * @param {(box: number[] | null) => void} onChange called after every committed change
   */
  constructor(stage, img, onChange = () => {}) {
    this.stage = stage;
    this.img = img;
    this.onChange = onChange;
    this.box = null;
    this.enabled = true; // false: the photo is only shown (detection needs no box)
    this.dragStart = null;
    this.el = document.createElement("div");
    this.el.className = "box";
    this.el.hidden = true;
    this.hintLayer = document.createElement("div");
    this.hintLayer.className = "hints";
    stage.append(this.hintLayer, this.el);
    stage.addEventListener("pointerdown", (e) => this.down(e));
    stage.addEventListener("pointermove", (e) => this.move(e));
    stage.addEventListener("pointerup", (e) => this.up(e));
    stage.addEventListener("pointercancel", () => this.cancel());
    stage.addEventListener("keydown", (e) => this.key(e));
    img.draggable = false; // the browser's own image drag would steal the gesture
    // after the page's own load handlers have shown the stage, so the rendered size is known
    img.addEventListener("load", () => requestAnimationFrame(() => this.fit()));
  }

  /**
   * The photo's size in the API's pixel frame: the file as stored, without EXIF rotation. The
   * stylesheet shows it that way (`image-orientation: none`), but `naturalWidth/Height` still
   * report the EXIF-rotated size, so a 90° rotation is undone by comparing with the rendered shape.
   */
  get size() {
    const [w, h] = [this.img.naturalWidth, this.img.naturalHeight];
    const rect = this.img.getBoundingClientRect();
    const rotated = rect.width > 0 && w !== h && rect.width > rect.height !== w > h;
    return rotated ? [h, w] : [w, h];
  }

  /** Let the stage fill its column while keeping the photo within the screen height (CSS --ar). */
  fit() {
    const [w, h] = this.size;
    if (w && h) this.stage.style.setProperty("--ar", String(w / h));
  }

  get ready() {
    return this.img.complete && this.img.naturalWidth > 0;
  }

  /** Display coordinates of a pointer event → clamped image pixel coordinates. */
  toImage(e) {
    const rect = this.img.getBoundingClientRect();
    const [w, h] = this.size;
    const x = ((e.clientX - rect.left) * w) / rect.width;
    const y = ((e.clientY - rect.top) * h) / rect.height;
    return [Math.min(Math.max(Math.round(x), 0), w), Math.min(Math.max(Math.round(y), 0), h)];
  }

  down(e) {
    if (!this.enabled || !this.ready || (e.pointerType === "mouse" && e.button !== 0)) return;
    e.preventDefault();
    this.stage.setPointerCapture(e.pointerId);
    this.stage.focus({ preventScroll: true });
    this.dragStart = this.toImage(e);
  }

  move(e) {
    if (!this.dragStart) return;
    this.draw(span(this.dragStart, this.toImage(e)));
  }

  up(e) {
    if (!this.dragStart) return;
    const box = span(this.dragStart, this.toImage(e));
    this.dragStart = null;
    if (box[2] - box[0] >= MIN_SIZE_PX && box[3] - box[1] >= MIN_SIZE_PX) this.set(box);
    else this.draw(this.box);
  }

  cancel() {
    this.dragStart = null;
    this.draw(this.box);
  }

  key(e) {
    if (!this.enabled || !this.ready) return;
    if (e.key === "Delete" || e.key === "Backspace") {
      e.preventDefault();
      this.set(null);
      return;
    }
    const dirs = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (!(e.key in dirs)) return;
    e.preventDefault();
    const [w, h] = this.size;
    const step = Math.max(1, Math.round(0.02 * Math.max(w, h)));
    const [dx, dy] = dirs[e.key].map((d) => d * step);
    let [x1, y1, x2, y2] = this.box ?? [w / 4, h / 4, (3 * w) / 4, (3 * h) / 4].map(Math.round);
    if (this.box && e.shiftKey) {
      x2 = Math.min(Math.max(x2 + dx, x1 + MIN_SIZE_PX), w);
      y2 = Math.min(Math.max(y2 + dy, y1 + MIN_SIZE_PX), h);
    } else if (this.box) {
      const mx = Math.min(Math.max(dx, -x1), w - x2);
      const my = Math.min(Math.max(dy, -y1), h - y2);
      [x1, y1, x2, y2] = [x1 + mx, y1 + my, x2 + mx, y2 + my];
    }
    this.set([x1, y1, x2, y2]);
  }

  /** Set (or clear with null) the committed box, in image pixels. */
  set(box) {
    this.box = box ? box.map((v) => Math.round(v)) : null;
    this.draw(this.box);
    this.onChange(this.box);
  }

  /** The box covering the whole photo (an explicit choice, unlike null = "not set"). */
  whole() {
    const [w, h] = this.size;
    this.set([0, 0, w, h]);
  }

  draw(box) {
    this.el.hidden = !box;
    if (box) place(this.el, box, this.size);
  }

  /** Read-only outlines (e.g. the model's detections) drawn under the editable box. */
  setHints(hints) {
    if (!this.ready) return;
    this.hintLayer.replaceChildren(
      ...hints.map(({ box, label }) => {
        const el = document.createElement("div");
        el.className = "hint";
        el.dataset.label = label;
        place(el, box, this.size);
        return el;
      }),
    );
  }
}

function span([ax, ay], [bx, by]) {
  return [Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by)];
}

function place(el, [x1, y1, x2, y2], [w, h]) {
  el.style.left = `${(100 * x1) / w}%`;
  el.style.top = `${(100 * y1) / h}%`;
  el.style.width = `${(100 * (x2 - x1)) / w}%`;
  el.style.height = `${(100 * (y2 - y1)) / h}%`;
}
