// Entry point of the admin SPA (bundled by scripts/build_web.ts into src/admin/web_assets.gen.ts).

import { render } from "preact";
import { App } from "./app.tsx";

render(<App />, document.getElementById("app")!);
