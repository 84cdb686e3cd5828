/** The built view (src/view/app/), a module only scripts/build.mjs provides: see sessionViewHtml. */
declare module "coding-mcp:session-view-html" {
  const html: string;
  export default html;
}
