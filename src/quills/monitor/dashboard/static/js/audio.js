// Listen mode: the live metrics as piano-like notes (Web Audio API).
//
// The mapping (also in docs/dashboard.md):
//  - every beat (1 s) each of the busiest commands plays one note, arpeggiated across the beat; its pitch
//    rises with the per-host request rate (log scale, 0..400/s) on a major pentatonic scale from C4 to E6,
//    so a busy service sounds bright and an idle one is silent (no traffic, no note);
//  - a command with 10 % errors or more adds a low dissonant pair (a minor second, C2 + C#2 upwards),
//    louder as the error % grows;
//  - a circuit that opens plays a diminished-seventh chord (B2 D3 F3 G#3), struck hard;
//  - a circuit that closes again (from open or half-open) plays a resolving C major chord (C4 E4 G4 C5).

const PENTATONIC = [0, 2, 4, 7, 9]; // semitones above the octave's C
const LOW_MIDI = 60; // C4
const STEPS = 13; // notes available for pitch: C4 .. E6
const BEAT_S = 1.0;
const MAX_VOICES_PER_BEAT = 8;
const RATE_TOP = 400;
export const OPEN_CHORD = [47, 50, 53, 56];
export const CLOSE_CHORD = [60, 64, 67, 72];

/** MIDI note for a per-host rate: 0 at no traffic would be silence, so rates > 0 map to C4..E6. */
export function pitchOf(hostRate) {
  const share = Math.log10(1 + Math.min(hostRate, RATE_TOP)) / Math.log10(1 + RATE_TOP);
  const step = Math.min(STEPS - 1, Math.floor(share * STEPS));
  return LOW_MIDI + 12 * Math.floor(step / 5) + PENTATONIC[step % 5];
}

/** The low dissonant pair for an error %: lower and louder as errors grow. */
export function errorNotesOf(errorPct) {
  const low = 36 + Math.max(0, 6 - Math.floor(errorPct / 15)); // C2..F#2
  return [low, low + 1];
}

const frequencyOf = (midi) => 440 * 2 ** ((midi - 69) / 12);

export class Listener {
  constructor() {
    this.context = null;
    this.master = null;
    this.volume = 0.6;
    this.muted = false;
    this.scheduled = 0; // notes scheduled since listening started (tests read this)
    this.scheduledByKind = {}; // the same by kind: rate, error, open, close
    this.recent = []; // the last notes: {kind, midi, at}
    this.timer = null;
    this.source = () => [];
  }

  get enabled() {
    return this.context !== null;
  }

  /** Start listening (call from a click: browsers only let a user gesture start audio). */
  enable(source) {
    this.source = source;
    if (!this.context) {
      this.context = new AudioContext();
      const compressor = this.context.createDynamicsCompressor();
      this.master = this.context.createGain();
      this.master.connect(compressor).connect(this.context.destination);
      this.applyVolume();
    }
    if (this.context.state === "suspended") this.context.resume();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.beat(), BEAT_S * 1000);
    this.beat();
  }

  disable() {
    clearInterval(this.timer);
    this.timer = null;
    if (this.context) this.context.close();
    this.context = null;
    this.master = null;
  }

  setVolume(volume) {
    this.volume = Math.min(1, Math.max(0, volume));
    this.applyVolume();
  }

  setMuted(muted) {
    this.muted = muted;
    this.applyVolume();
  }

  applyVolume() {
    if (!this.master) return;
    const level = this.muted ? 0 : this.volume * 0.5;
    this.master.gain.setTargetAtTime(level, this.context.currentTime, 0.05);
  }

  /** One beat: a note per busy command, and the error notes. `source()` gives the visible views. */
  beat() {
    if (!this.context) return;
    const start = this.context.currentTime + 0.05;
    const views = this.source()
      .filter((view) => view.rate > 0)
      .sort((a, b) => b.rate - a.rate)
      .slice(0, MAX_VOICES_PER_BEAT);
    const step = BEAT_S / Math.max(1, views.length);
    views.forEach((view, i) => {
      const at = start + i * step;
      this.note(pitchOf(view.hostRate), at, 0.22, "rate");
      if (view.errorPct >= 10) {
        const loud = 0.15 + 0.35 * Math.min(1, view.errorPct / 100);
        for (const midi of errorNotesOf(view.errorPct)) this.note(midi, at, loud, "error");
      }
    });
  }

  /** A circuit changed state: opening strikes a diminished chord, closing a resolving major chord. */
  circuitChanged(fromKind, toKind) {
    if (!this.context) return;
    // half-open counts as open: a circuit goes open -> half-open -> closed, and the chords mark leaving and
    // reaching "closed"; a failed trial (half-open -> open) is not a new opening
    const isOpen = (kind) => ["open", "half_open", "forced_open", "mixed"].includes(kind);
    const at = this.context.currentTime + 0.02;
    if (isOpen(toKind) && !isOpen(fromKind)) {
      OPEN_CHORD.forEach((midi, i) => this.note(midi, at + i * 0.015, 0.45, "open"));
    } else if (toKind === "closed" && isOpen(fromKind)) {
      CLOSE_CHORD.forEach((midi, i) => this.note(midi, at + i * 0.04, 0.3, "close"));
    }
  }

  /** A piano-like note: a quick strike, then an exponential decay; two partials for some body. */
  note(midi, at, level, kind) {
    const ctx = this.context;
    const freq = frequencyOf(midi);
    const decay = midi < 48 ? 2.2 : 1.4;
    const envelope = ctx.createGain();
    envelope.gain.setValueAtTime(0.0001, at);
    envelope.gain.exponentialRampToValueAtTime(level, at + 0.008);
    envelope.gain.exponentialRampToValueAtTime(0.0001, at + decay);
    envelope.connect(this.master);
    const partials = [
      ["triangle", 1, 1],
      ["sine", 2, 0.35],
      ["sine", 3, 0.12],
    ];
    for (const [type, multiple, weight] of partials) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = type;
      osc.frequency.setValueAtTime(freq * multiple, at);
      gain.gain.value = weight;
      osc.connect(gain).connect(envelope);
      osc.start(at);
      osc.stop(at + decay + 0.05);
    }
    this.scheduled += 1;
    this.scheduledByKind[kind] = (this.scheduledByKind[kind] ?? 0) + 1;
    this.recent.push({ kind, midi, at });
    if (this.recent.length > 64) this.recent.shift();
  }
}
