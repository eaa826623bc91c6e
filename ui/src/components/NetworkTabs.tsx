/**
 * The tabs of the network pages: networks, the routers between them, the security groups on their NICs,
 * and all of it drawn (topology).
 */
const TABS = [
  ['networks', 'Networks', '#/networks'],
  ['routers', 'Routers', '#/routers'],
  ['security-groups', 'Security groups', '#/security-groups'],
  ['topology', 'Topology', '#/topology'],
] as const;

export function NetworkTabs({ active }: { active: (typeof TABS)[number][0] }) {
  return (
    <nav class="tabs network-tabs">
      {TABS.map(([key, label, href]) => (
        <a key={key} class={active === key ? 'active' : ''} href={href} data-tab={key}>
          {label}
        </a>
      ))}
    </nav>
  );
}
