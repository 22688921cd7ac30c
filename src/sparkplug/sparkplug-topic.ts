// Sparkplug B topics: spBv1.0/{group}/{messageType}/{edgeNode}[/{device}]. The levels a
// sparkplug route names (group, messageType, edgeNode, device) come from here, whatever its
// match pattern captures.

export const sparkplugNamespace = 'spBv1.0';
export const sparkplugMessageTypes = ['NBIRTH', 'NDEATH', 'NDATA', 'NCMD', 'DBIRTH', 'DDEATH', 'DDATA', 'DCMD', 'STATE'] as const;
export type SparkplugMessageType = (typeof sparkplugMessageTypes)[number];

export interface SparkplugTopic {
  readonly group: string;
  readonly messageType: SparkplugMessageType;
  readonly edgeNode: string;
  /** '' for node messages. */
  readonly device: string;
}

/** The level names a sparkplug route may use in its templates. */
export const sparkplugLevels = ['group', 'messageType', 'edgeNode', 'device'] as const;

/** Parses a Sparkplug B topic, or says why it is not one. */
export function parseSparkplugTopic(topic: string): SparkplugTopic | string {
  const parts = topic.split('/');
  if (parts[0] !== sparkplugNamespace) return `"${topic}" is not in the ${sparkplugNamespace} namespace`;
  const [, group, type, edgeNode, device, ...rest] = parts;
  if (!sparkplugMessageTypes.includes(type as SparkplugMessageType)) return `"${topic}": "${type}" is not a Sparkplug message type`;
  if (type === 'STATE') return `"${topic}": STATE messages carry no metrics`;
  const isDevice = type!.startsWith('D');
  if (!group || !edgeNode || rest.length > 0 || (isDevice ? !device : device !== undefined)) {
    return `"${topic}" is not spBv1.0/{group}/${type}/{edgeNode}${isDevice ? '/{device}' : ''}`;
  }
  return { group, messageType: type as SparkplugMessageType, edgeNode, device: device ?? '' };
}
