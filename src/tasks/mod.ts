export { Maintenance, TASKS } from "./maintenance.ts";
export type { MaintenanceOptions, TaskInfo } from "./maintenance.ts";
