// The Kafka headers that carry a message's MQTT side, one scheme for routed records, dead
// letters and replayed commands: the MQTT 5 user properties under their own names (never one
// of sluice's own mqtt-* or sluice-* names, which a device must not be able to set), then
// mqtt-topic, mqtt-qos, mqtt-content-type, mqtt-correlation-data, mqtt-response-topic and
// mqtt-payload-format when present.
import type { Message } from '../../message.ts';
import type { KafkaHeaderValue } from './kafka-record.ts';

/** Header names sluice keeps for itself. */
export const reservedHeader = /^(mqtt-|sluice-)/i;

/**
 * The message's headers, a fresh object. A caller may add its own after (a route's headers
 * replace a user property of the same name; they cannot be reserved, so mqtt-* stays).
 */
export function mqttHeaders(message: Message): Record<string, KafkaHeaderValue> {
  const headers: Record<string, KafkaHeaderValue> = {};
  const p = message.properties;
  if (p.userProperties) {
    for (const [name, value] of Object.entries(p.userProperties)) {
      if (!reservedHeader.test(name)) headers[name] = value;
    }
  }
  headers['mqtt-topic'] = message.topic;
  headers['mqtt-qos'] = String(message.qos);
  if (p.contentType !== undefined) headers['mqtt-content-type'] = p.contentType;
  if (p.correlationData !== undefined) headers['mqtt-correlation-data'] = p.correlationData;
  if (p.responseTopic !== undefined) headers['mqtt-response-topic'] = p.responseTopic;
  if (p.payloadFormatIndicator !== undefined) headers['mqtt-payload-format'] = p.payloadFormatIndicator ? 'utf-8' : 'bytes';
  return headers;
}
