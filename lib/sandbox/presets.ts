/** Kling's official voices and elements as the sandbox serves them: every account may name them. */

export interface PresetVoice {
  voiceId: string;
  name: string;
}

export interface PresetElement {
  elementId: number;
  name: string;
  description: string;
  tagId: string;
}

export const PRESET_VOICES: readonly PresetVoice[] = [
  { voiceId: '829824295735410756', name: 'Warm Narrator' },
  { voiceId: '829824295735410757', name: 'Bright Host' },
  { voiceId: '829824295735410758', name: 'Calm Storyteller' },
];

export const PRESET_ELEMENTS: readonly PresetElement[] = [
  { elementId: 310000000000001, name: 'Grace', description: 'a young woman in a grey coat', tagId: 'o_102' },
  { elementId: 310000000000002, name: 'Armored Youth', description: 'a boy in silver armour', tagId: 'o_102' },
  { elementId: 310000000000003, name: 'Red Fox', description: 'a red fox with a white tail tip', tagId: 'o_103' },
];

export const PRESET_VOICE_IDS: ReadonlySet<string> = new Set(PRESET_VOICES.map((v) => v.voiceId));
