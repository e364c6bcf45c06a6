// MITRE ATT&CK (Enterprise) techniques that Quicksand's findings indicate: the one table of
// them, by id. docs/detection.md says which change maps to which.
export const ATTACK_TECHNIQUES = {
  'T1036.005': 'Masquerading: Match Legitimate Name or Location',
  T1037: 'Boot or Logon Initialization Scripts',
  'T1053.003': 'Scheduled Task/Job: Cron',
  'T1098.004': 'Account Manipulation: SSH Authorized Keys',
  'T1136.001': 'Create Account: Local Account',
  'T1222.002': 'File and Directory Permissions Modification: Linux and Mac',
  'T1543.002': 'Create or Modify System Process: Systemd Service',
  'T1546.004': 'Event Triggered Execution: Unix Shell Configuration Modification',
  T1548: 'Abuse Elevation Control Mechanism',
  'T1548.001': 'Abuse Elevation Control Mechanism: Setuid and Setgid',
  'T1548.003': 'Abuse Elevation Control Mechanism: Sudo and Sudo Caching',
  T1554: 'Compromise Host Software Binary',
  T1556: 'Modify Authentication Process',
  'T1556.003': 'Modify Authentication Process: Pluggable Authentication Modules',
  'T1574.006': 'Hijack Execution Flow: Dynamic Linker Hijacking',
} as const;
export type TechniqueId = keyof typeof ATTACK_TECHNIQUES;

export const TECHNIQUE_ID = /^T\d{4}(\.\d{3})?$/;

export function technique(id: TechniqueId): { id: TechniqueId; name: string } {
  return { id, name: ATTACK_TECHNIQUES[id] };
}
