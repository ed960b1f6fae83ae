/**
 * The aligned form every dataset format is converted to (LLaMA-Factory's internal representation):
 * prompt turns alternate user/observation and assistant/function and end on a user or observation turn;
 * response holds one message (sft), two (ranking: chosen, rejected) or none (pt: the text is in prompt).
 */
export type Role = 'user' | 'assistant' | 'system' | 'function' | 'observation';

export interface Message {
  role: Role;
  content: string;
}

export interface AlignedExample {
  prompt: Message[];
  response: Message[];
  system: string;
  /** JSON string of tool schemas, or '' */
  tools: string;
  /** KTO: true for a desirable answer, false for an undesirable one */
  ktoTag?: boolean;
  /** where the example came from, for error messages: file and row (1-based) */
  source: { file: string; row: number };
}

export function isUserSide(role: Role): boolean {
  return role === 'user' || role === 'observation';
}

export function isAssistantSide(role: Role): boolean {
  return role === 'assistant' || role === 'function';
}
