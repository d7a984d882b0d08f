// The window's views (VM list, creation wizard, consoles) arrive with the API client; until then
// the renderer says plainly what it is.
export function App() {
  return (
    <main>
      <h1>Vireo</h1>
      <p>The window is not built yet: use the `vireo` command.</p>
    </main>
  );
}
