/**
 * A DNS name only controller certificates carry: etcd clients dial members by IP and check this name
 * (TLS may not send an IP as server name), so only a controller can pose as an etcd member.
 */
export const CONTROLLER_SAN = 'controller.neuroflow.internal';
