// Keyboard shortcuts of the review app (the only script its CSP allows: script-src 'self').
// p = pass, f = fail (each once the note is written; with an empty note, the choice is remembered and the
// note gets the focus), Ctrl+Enter in the note = record the chosen decision, n or j = next item, k = previous,
// u = undo, s = the student's page, q = the queue. Keys typed in a text field are the text's, but Ctrl+Enter.
(function () {
  "use strict";
  var chosen = null;

  function byId(id) { return document.getElementById(id); }

  function follow(id) {
    var link = byId(id);
    if (link && link.href) { window.location.assign(link.href); }
  }

  function say(text) {
    var place = byId("chosen");
    if (place) { place.textContent = text; }
  }

  function decide(value) {
    var form = byId("decide");
    var note = byId("note");
    if (!form || !note) { return; }
    chosen = value;
    if (!note.value.trim()) {
      say("Chosen: " + value + ". Write the note, then Ctrl+Enter records it.");
      note.focus();
      return;
    }
    var button = byId(value);
    if (button) { form.requestSubmit(button); }
  }

  function undo() {
    var form = byId("undo");
    if (form) { form.requestSubmit(); }
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var typing = target && (target.tagName === "TEXTAREA" || target.tagName === "INPUT" ||
                            target.tagName === "SELECT" || target.isContentEditable);
    if (typing) {
      if (target.id === "note" && event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        if (chosen) { decide(chosen); } else { say("Choose first: p for pass, f for fail (Esc leaves the note)."); }
      } else if (event.key === "Escape") {
        target.blur();
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var actions = {
      p: function () { decide("pass"); },
      f: function () { decide("fail"); },
      n: function () { follow("next"); },
      j: function () { follow("next"); },
      k: function () { follow("previous"); },
      u: undo,
      s: function () { follow("student-link"); },
      q: function () { follow("queue-link"); }
    };
    var action = actions[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  });
}());
