/** Shapes of what the server sends (the card catalogue, pipeline files, runs) and of the editor's graph. */
import type { Edge, Node } from '@xyflow/react';

export interface PortSpec {
  name: string;
  kind: string;
  required: boolean;
  description?: string;
  metric?: boolean;
}

export interface JsonSchema {
  type?: string | string[];
  title?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
}

/** One card type of the catalogue (GET /api/cards). */
export interface CardType {
  id: string;
  title: string;
  category: string;
  description: string;
  inputs: PortSpec[];
  outputs: PortSpec[];
  config_schema: JsonSchema;
  deterministic?: boolean;
  version?: number;
  mutates_state?: boolean;
}

export interface Catalogue {
  cards: CardType[];
  kinds: Record<string, string>;
}

/** The `ui` block of a card in a pipeline file: belongs to the editor, never changes a result. */
export interface CardUi {
  position?: { x: number; y: number };
  size?: { width: number; height: number };
  [key: string]: unknown;
}

/** A card in a version-1 pipeline file. */
export interface PipelineCardFile {
  id: string;
  type: string;
  inputs?: Record<string, string>;
  config?: Record<string, unknown>;
  ui?: CardUi;
  /** Run the card only when this holds (docs/blocks.md, "`when`: conditional cards"); otherwise it is skipped. */
  when?: WhenCondition;
  /** What the card (or every card of a block) asks a Ray cluster for: {cpu, gpu, memory, <custom>: amount}. */
  resources?: Record<string, unknown>;
  /** A block's body (type `loop`): its cards in script order and its output ports. */
  body?: SubPipelineFile;
}

/** A card's `when`: {every, of, global?}, {finite}, {value, equals | not_equals | above | ...}, {all: [...]} or
 * {any: [...]}. */
export type WhenCondition = Record<string, unknown>;

export interface SubPipelineFile {
  cards: PipelineCardFile[];
  /** The block's output ports: each maps to "<body card>.<port>". */
  outputs?: Record<string, string>;
}

export interface PipelineFile {
  version: 1;
  name?: string;
  description?: string;
  cards: PipelineCardFile[];
}

/** What a card node carries: the document, nothing about runs or validation. */
export type CardData = {
  cardType: string;
  config: Record<string, unknown>;
  /** ui keys other than position/size, kept for the file (e.g. a colour). */
  ui?: Record<string, unknown>;
  /** inputs whose reference names no card on the canvas: kept so that the file round-trips. */
  brokenInputs?: Record<string, string>;
  /** The ports, when no catalogue entry gives them (a block's, or those a card of an unknown type is seen to use). */
  ports?: { inputs: PortSpec[]; outputs: PortSpec[] };
  /** The card's `when`, kept as the file has it. */
  when?: WhenCondition;
  /** The card's `resources` (docs/ray.md), kept as the file has it. */
  resources?: Record<string, unknown>;
};

/** A block holding a sub-pipeline: a group node whose children are the body's cards. */
export type GroupData = CardData & {
  /** The order of the body's cards (the body is a script too). */
  bodyOrder: string[];
  /** The size of the frame when expanded (a collapsed block is drawn as one card). */
  frame?: { width: number; height: number };
  /** Ports used inside the body as "<block>.<port>" that are neither inputs, `iteration`, carried values nor items. */
  innerExtra?: PortSpec[];
};

export type CardNode = Node<CardData, 'card'>;
export type GroupNode = Node<GroupData, 'group'>;
export type AnyNode = CardNode | GroupNode;
export type LinkEdge = Edge<{ kind?: string }>;

export interface Problem {
  message: string;
  card?: string | null;
  field?: string | null;
}

/**
 * `not-run`: a card of a run that ended (failed, cancelled) before it came to it.
 * `skipped`: a card whose `when` did not hold (or that used a skipped value): never a success.
 */
export type CardRunStatus = 'queued' | 'running' | 'cached' | 'done' | 'failed' | 'not-run' | 'skipped';

export type CardLight = 'unconfigured' | 'ready' | CardRunStatus;
