// Proves the capture ran scripts: this paragraph exists only in the live DOM.
document.addEventListener("DOMContentLoaded", () => {
  const p = document.createElement("p");
  p.id = "script-output";
  p.textContent = "Added by script.js";
  document.body.appendChild(p);
});
