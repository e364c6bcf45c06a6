// The one table of which control each export record is evidence for. Every exporter prints the
// ids from here; an auditor reads the wording below in the report's legend.

export const CONTROLS = {
  'PCI DSS 11.5.2': 'A change-detection mechanism alerts on unauthorized modification of critical files and compares them at least weekly',
  'PCI DSS 10.7.2': 'Failures of critical security control systems are detected, alerted and addressed (with start and end)',
  'NIST 800-53 SI-7': 'Software, firmware and information integrity: integrity verification tools detect unauthorized changes',
  'NIST 800-53 SI-7(7)': 'Integration of detection and response: detected integrity violations are handled through the response process',
  'NIST 800-53 CM-3': 'Configuration change control: changes are reviewed and approved, with records kept',
  'NIST 800-53 CM-6': 'Configuration settings are established, monitored and deviations approved',
  'NIST 800-53 CM-8(3)': 'Automated unauthorized component detection',
  'CIS v8 2.1': 'Establish and maintain a software inventory',
  'CIS v8 2.3': 'Address unauthorized software: removed, or a documented exception reviewed',
  'SOC 2 CC7.1': 'Detection and monitoring procedures identify changes to configurations and new vulnerabilities',
  'SOC 2 CC8.1': 'Changes are authorized, designed, documented, approved and implemented',
} as const;

export type ControlId = keyof typeof CONTROLS;

/** What a record is, as far as the table cares. */
export type ControlKey = 'host' | 'coverage' | 'outage' | 'change-package' | 'change-config' | 'change-file' | 'change-set' | 'exception' | 'alert';

export const CONTROL_MAP: Readonly<Record<ControlKey, readonly ControlId[]>> = {
  host: ['CIS v8 2.1', 'NIST 800-53 CM-8(3)'],
  coverage: ['PCI DSS 11.5.2', 'NIST 800-53 SI-7', 'SOC 2 CC7.1'],
  outage: ['PCI DSS 10.7.2', 'SOC 2 CC7.1'],
  'change-package': ['NIST 800-53 CM-8(3)', 'CIS v8 2.1', 'NIST 800-53 CM-3', 'NIST 800-53 SI-7(7)', 'SOC 2 CC8.1'],
  'change-config': ['NIST 800-53 CM-6', 'NIST 800-53 CM-3', 'NIST 800-53 SI-7(7)', 'PCI DSS 11.5.2', 'SOC 2 CC8.1'],
  'change-file': ['NIST 800-53 SI-7', 'NIST 800-53 CM-3', 'NIST 800-53 SI-7(7)', 'PCI DSS 11.5.2', 'SOC 2 CC8.1'],
  'change-set': ['NIST 800-53 CM-3', 'SOC 2 CC8.1'],
  exception: ['CIS v8 2.3', 'NIST 800-53 CM-3'],
  alert: ['PCI DSS 11.5.2', 'NIST 800-53 SI-7(7)', 'SOC 2 CC7.1'],
};

/** The controls of a change: by what changed, plus the exception controls when it was waived or approved for a while. */
export function changeControls(kind: string, path: string | null, exception: boolean): ControlId[] {
  const key: ControlKey = kind.startsWith('package-') ? 'change-package' : path !== null && path.startsWith('/etc/') ? 'change-config' : 'change-file';
  const ids = new Set<ControlId>(CONTROL_MAP[key]);
  if (exception) for (const id of CONTROL_MAP.exception) ids.add(id);
  return [...ids];
}
