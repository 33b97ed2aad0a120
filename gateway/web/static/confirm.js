// A confirmation dialog for forms marked data-confirm="question": the form is sent only once the person accepts,
// with confirmed=yes. The server asks again (a confirmation page) for any form that arrives without it, so this
// dialog saves a round trip and nothing else depends on it.
const dialog = document.getElementById("confirm-dialog");
for (const form of document.querySelectorAll("form[data-confirm]")) {
  form.addEventListener("submit", (event) => {
    const confirmed = form.querySelector('input[name="confirmed"]');
    if (confirmed && confirmed.value === "yes") return;
    event.preventDefault();
    dialog.querySelector("#confirm-dialog-question").textContent = form.dataset.confirm;
    dialog.querySelector("#confirm-dialog-yes").textContent = form.dataset.confirmLabel || dialog.dataset.yes;
    dialog.returnValue = "";
    dialog.showModal();
    dialog.addEventListener("close", () => {
      if (dialog.returnValue !== "yes") return;
      let field = confirmed;
      if (!field) {
        field = document.createElement("input");
        Object.assign(field, {type: "hidden", name: "confirmed"});
        form.append(field);
      }
      field.value = "yes";
      form.requestSubmit();
    }, {once: true});
  });
}
