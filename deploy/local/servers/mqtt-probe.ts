// The readiness probe of the stack's MQTT brokers: a real MQTT 5 CONNECT/CONNACK round trip.
import mqtt from 'mqtt';

export async function mqttProbe(host: string, port: number): Promise<void> {
  const client = await mqtt.connectAsync({
    host,
    port,
    protocolVersion: 5,
    clientId: `sluice-stack-probe-${process.pid}`,
    reconnectPeriod: 0,
    connectTimeout: 2_000,
  });
  await client.endAsync();
}
