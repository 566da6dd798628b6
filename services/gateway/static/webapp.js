// The staff pages' behaviour: each form or button calls the JSON API (same origin, session cookie).
// Strings come from the page (#messages), already in the page's language.
(function () {
  "use strict";

  var messagesNode = document.getElementById("messages");
  var M = messagesNode ? JSON.parse(messagesNode.textContent) : {};

  // Every change sends the session's CSRF token (from the page) and a JSON body: the server refuses others.
  var csrfNode = document.querySelector("meta[name=csrf-token]");
  var csrf = csrfNode ? csrfNode.getAttribute("content") : "";

  // Every change carries an Idempotency-Key: the same form sent again with the same content (after a
  // timeout, a 503, a lost connection) reuses its key, so the server runs it once and answers with the
  // first result. A new key once it succeeded. Kept in memory only: the body may hold personal data.
  var pendingKeys = {};

  function newKey() {
    if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID(); }
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function api(method, url, body) {
    var headers = { Accept: "application/json" };
    var payload = method === "GET" ? undefined : JSON.stringify(body === undefined ? {} : body);
    var attempt = method + " " + url + " " + payload;
    if (method !== "GET") {
      headers["Content-Type"] = "application/json";
      if (csrf) { headers["X-CSRF-Token"] = csrf; }
      headers["Idempotency-Key"] = pendingKeys[attempt] = pendingKeys[attempt] || newKey();
    }
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: headers,
      body: payload
    }).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (response.ok) { delete pendingKeys[attempt]; }
        if (!response.ok) {
          var error = (data && data.error) || { code: "http_" + response.status, message: response.statusText };
          error.status = response.status;
          throw error;
        }
        return data;
      });
    }, function () {
      throw { code: "offline", message: M.offline || "network error" };
    });
  }

  // A readable message for an API error; field errors ({field: [messages]}) are listed.
  function describe(error) {
    if (error.status === 401) {
      return M.signed_out || error.message;
    }
    var text = (M.error || "") + " " + (error.message || "");
    var details = error.details;
    if (details && typeof details === "object") {
      var parts = [];
      Object.keys(details).forEach(function (field) {
        var value = details[field];
        parts.push(field + ": " + (Array.isArray(value) ? value.join(" ") : JSON.stringify(value)));
      });
      if (parts.length) { text += " (" + parts.join("; ") + ")"; }
    }
    return text.trim();
  }

  function showError(container, error) {
    var box = (container || document).querySelector(".error") || document.querySelector(".error");
    if (!box) { return; }
    box.textContent = typeof error === "string" ? error : describe(error);
    box.hidden = false;
    if (error && error.status === 401) {
      // The session ended: sign in again and come back here.
      window.setTimeout(function () {
        window.location.href = "/login?next=" + encodeURIComponent(window.location.pathname + window.location.search);
      }, 1200);
    }
  }

  function clearError(container) {
    var box = (container || document).querySelector(".error");
    if (box) { box.hidden = true; box.textContent = ""; }
  }

  function busy(button, on) {
    if (button) { button.disabled = on; button.setAttribute("aria-busy", on ? "true" : "false"); }
  }

  // ---- sign in / out ----------------------------------------------------------------------

  var loginForm = document.getElementById("login-form");
  if (loginForm) {
    loginForm.addEventListener("submit", function (event) {
      event.preventDefault();
      clearError(loginForm);
      var email = loginForm.elements.email.value.trim();
      var password = loginForm.elements.password.value;
      if (!email || !password) { showError(loginForm, M.required); return; }
      var button = loginForm.querySelector("button[type=submit]");
      busy(button, true);
      api("POST", "/api/login", { email: email, password: password }).then(function () {
        var next = loginForm.getAttribute("data-next") || "/";
        // Only ever a path of this site (the server checked it too).
        window.location.assign(next.charAt(0) === "/" && next.charAt(1) !== "/" ? next : "/");
      }, function (error) {
        busy(button, false);
        showError(loginForm, error.status === 401 ? M.login_failed : error);
      });
    });
  }

  var signOut = document.getElementById("sign-out");
  if (signOut) {
    signOut.addEventListener("click", function () {
      api("POST", "/api/logout").then(function () { window.location.assign("/login"); },
                                      function (error) { showError(document, error); });
    });
  }

  // The referrals page's status filter applies as soon as it changes (no inline handlers: CSP).
  var statusFilter = document.getElementById("status-filter");
  if (statusFilter) {
    statusFilter.addEventListener("change", function () { statusFilter.form.submit(); });
  }

  // ---- inbox ------------------------------------------------------------------------------

  function setUnread(count) {
    var badge = document.getElementById("unread-count");
    var text = document.getElementById("unread-text");
    if (badge) { badge.textContent = String(count); badge.setAttribute("data-unread", String(count)); }
    if (text && M.unread) { text.textContent = M.unread.replace("{n}", String(count)); }
  }

  document.querySelectorAll("button.mark-read").forEach(function (button) {
    button.addEventListener("click", function () {
      var item = button.closest(".item");
      clearError(document);
      busy(button, true);
      api("POST", "/api/inbox/" + encodeURIComponent(button.getAttribute("data-id")) + "/read").then(function () {
        item.classList.remove("unread");
        item.classList.add("read");
        item.querySelector(".state-read").hidden = false;
        button.remove();
        return api("GET", "/api/inbox/unread-count").then(function (data) { setUnread(data.unread); });
      }).catch(function (error) {
        busy(button, false);
        showError(document, error);
      });
    });
  });

  // ---- referrals --------------------------------------------------------------------------

  function act(button, body) {
    clearError(document);
    busy(button, true);
    var url = "/api/referrals/" + encodeURIComponent(button.getAttribute("data-id")) + "/" +
      encodeURIComponent(button.getAttribute("data-action"));
    return api("POST", url, body || {}).then(function () {
      window.location.reload();  // the server renders the new state, deadlines and buttons
    }, function (error) {
      busy(button, false);
      showError(document, error);
    });
  }

  // decline needs a reason, complete an outcome: a small form opens under the buttons.
  function askFor(button) {
    var actions = button.closest(".actions");
    var open = actions.querySelector("form.ask");
    if (open) { open.remove(); }
    var field = button.getAttribute("data-input");
    var form = document.createElement("form");
    form.className = "ask stack";
    form.noValidate = true;  // our message, in the page's language
    var label = document.createElement("label");
    label.textContent = field === "reason" ? M.reason_prompt : M.outcome_prompt;
    var input = document.createElement("textarea");
    input.name = field;
    input.required = true;
    input.rows = 2;
    input.maxLength = field === "reason" ? 200 : 2000;
    label.appendChild(input);
    var confirm = document.createElement("button");
    confirm.type = "submit";
    confirm.textContent = button.textContent + " — " + (M.confirm || "OK");
    confirm.setAttribute("data-id", button.getAttribute("data-id"));
    confirm.setAttribute("data-action", button.getAttribute("data-action"));
    form.appendChild(label);
    form.appendChild(confirm);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var value = input.value.trim();
      if (!value) { showError(document, M.required); return; }
      var body = {};
      body[field] = value;
      act(confirm, body);
    });
    actions.appendChild(form);
    input.focus();
  }

  document.querySelectorAll("button.referral-action").forEach(function (button) {
    button.addEventListener("click", function () {
      if (button.getAttribute("data-input")) { askFor(button); } else { act(button); }
    });
  });

  // ---- my account, my association's staff ---------------------------------------------------

  // The page reloads with a flag, in the page's language (the session and its CSRF token are new).
  function reloadWith(flag) {
    var params = new URLSearchParams(window.location.search);
    params.set(flag, "1");
    window.location.assign(window.location.pathname + "?" + params.toString());
  }

  var passwordForm = document.getElementById("password-form");
  if (passwordForm) {
    passwordForm.addEventListener("submit", function (event) {
      event.preventDefault();
      clearError(passwordForm);
      var f = passwordForm.elements;
      if (!f.current_password.value || !f.new_password.value) { showError(passwordForm, M.required); return; }
      if (f.new_password.value !== f.confirm_password.value) { showError(passwordForm, M.password_mismatch); return; }
      var button = passwordForm.querySelector("button[type=submit]");
      busy(button, true);
      api("POST", "/api/password", { current_password: f.current_password.value, new_password: f.new_password.value })
        .then(function () { passwordForm.reset(); reloadWith("changed"); }, function (error) {
          busy(button, false);
          showError(passwordForm, error);
        });
    });
  }

  document.querySelectorAll("button.staff-deactivate").forEach(function (button) {
    button.addEventListener("click", function () {
      clearError(document);
      if (!window.confirm((M.staff_confirm || "?").replace("{name}", button.getAttribute("data-name")))) { return; }
      busy(button, true);
      api("POST", "/api/staff/" + encodeURIComponent(button.getAttribute("data-id")) + "/deactivate").then(function () {
        reloadWith("deactivated");
      }, function (error) {
        busy(button, false);
        showError(document, error);
      });
    });
  });

  // ---- intake -----------------------------------------------------------------------------

  var lang = document.documentElement.lang || "fr";

  function recordHref(beneficiaryId) {
    return "/beneficiaries/" + encodeURIComponent(beneficiaryId) + "?lang=" + encodeURIComponent(lang);
  }

  var intakeForm = document.getElementById("intake-form");
  if (intakeForm) {
    var result = document.getElementById("intake-result");

    intakeForm.addEventListener("submit", function (event) {
      event.preventDefault();
      clearError(intakeForm);
      var f = intakeForm.elements;
      var body = { kind: f.kind.value, needs: [], urgency: "normal" };
      ["first_name", "last_name", "first_name_ar", "last_name_ar", "phone", "city", "notes"].forEach(function (name) {
        var value = f[name].value.trim();
        if (value) { body[name] = value; }
      });
      if (f.language.value) { body.language = f.language.value; }
      if (f.birth_year.value) { body.birth_year = parseInt(f.birth_year.value, 10); }
      intakeForm.querySelectorAll("input[name=needs]:checked").forEach(function (box) { body.needs.push(box.value); });
      var urgency = intakeForm.querySelector("input[name=urgency]:checked");
      if (urgency) { body.urgency = urgency.value; }
      if (!body.first_name && !body.last_name && !body.first_name_ar && !body.last_name_ar) {
        showError(intakeForm, M.required);
        return;
      }
      var button = intakeForm.querySelector("button[type=submit]");
      busy(button, true);
      api("POST", "/api/beneficiaries", body).then(function (created) {
        busy(button, false);
        intakeForm.reset();
        intakeForm.hidden = true;
        result.querySelector(".result-title").textContent = M.registered;
        result.querySelector(".result-id").textContent = created.id;
        document.getElementById("intake-open").href = recordHref(created.id);
        var box = result.querySelector(".duplicates");
        box.textContent = "";
        var duplicates = created.possible_duplicates || [];
        var heading = document.createElement("p");
        heading.textContent = duplicates.length ? M.duplicates : M.no_duplicates;
        box.appendChild(heading);
        if (duplicates.length) {
          box.classList.add("warning");
          var list = document.createElement("ul");
          duplicates.forEach(function (duplicate) {
            var li = document.createElement("li");
            var link = document.createElement("a");
            link.href = recordHref(duplicate.id);
            link.dir = "ltr";
            var code = document.createElement("code");
            code.textContent = duplicate.id;
            link.appendChild(code);
            li.appendChild(link);
            li.appendChild(document.createTextNode(" — " + duplicate.reasons.map(function (reason) {
              return (M.dup && M.dup[reason]) || reason;
            }).join(", ")));
            list.appendChild(li);
          });
          box.appendChild(list);
        } else {
          box.classList.remove("warning");
        }
        result.hidden = false;
        result.scrollIntoView();
      }, function (error) {
        busy(button, false);
        showError(intakeForm, error);
      });
    });

    document.getElementById("intake-again").addEventListener("click", function () {
      result.hidden = true;
      intakeForm.hidden = false;
      intakeForm.elements.first_name.focus();
    });
  }

  // ---- a beneficiary's record: consents, duplicates, referring her --------------------------

  var record = document.getElementById("beneficiary");
  if (record) {
    var beneficiaryId = record.getAttribute("data-id");
    var ownAssociation = record.getAttribute("data-association");
    var namesNode = document.getElementById("association-names");
    var names = namesNode ? JSON.parse(namesNode.textContent) : {};

    var checkedValues = function (form, name) {
      return Array.prototype.map.call(form.querySelectorAll("input[name=" + name + "]:checked"),
                                      function (box) { return box.value; });
    };

    // A button that changes her record: call the API, then let the server render the new state.
    var postAndReload = function (button, url, body) {
      clearError(document);
      busy(button, true);
      api("POST", url, body || {}).then(function () { window.location.reload(); }, function (error) {
        busy(button, false);
        showError(document, error);
      });
    };

    document.querySelectorAll("button.consent-revoke").forEach(function (button) {
      button.addEventListener("click", function () {
        postAndReload(button, "/api/consents/" + encodeURIComponent(button.getAttribute("data-id")) + "/revoke");
      });
    });

    document.querySelectorAll("button.duplicate-decision").forEach(function (button) {
      button.addEventListener("click", function () {
        postAndReload(button, "/api/duplicates/" + encodeURIComponent(button.getAttribute("data-id")),
                      { decision: button.getAttribute("data-decision") });
      });
    });

    // The associations (other than hers) offering the form's chosen category, from the directory.
    var loadRecipients = function (form) {
      var category = form.querySelector("select.category").value;
      var select = form.querySelector("select.recipients");
      select.disabled = true;
      return api("GET", "/api/directory/services?category=" + encodeURIComponent(category)).then(function (services) {
        if (form.querySelector("select.category").value !== category) { return; }  // a later choice won
        select.textContent = "";
        var placeholder = new Option(M.choose || "—", "");
        select.appendChild(placeholder);
        var seen = {};
        services.forEach(function (service) {
          if (service.association === ownAssociation || seen[service.association]) { return; }
          seen[service.association] = true;
          var label = (names[service.association] || service.association) + (service.city ? " · " + service.city : "");
          select.appendChild(new Option(label, service.association));
        });
        if (select.options.length === 1) { placeholder.textContent = M.no_recipient || "—"; }
        select.disabled = false;
      }, function (error) { showError(form, error); });
    };

    var consentForm = document.getElementById("consent-form");
    var referForm = document.getElementById("refer-form");
    [consentForm, referForm].forEach(function (form) {
      if (!form) { return; }
      form.querySelector("select.category").addEventListener("change", function () { loadRecipients(form); });
      loadRecipients(form);
    });

    if (consentForm) {
      consentForm.addEventListener("submit", function (event) {
        event.preventDefault();
        clearError(consentForm);
        var f = consentForm.elements;
        var body = { purpose: f.purpose.value, fields: checkedValues(consentForm, "fields") };
        var kind = consentForm.querySelector("input[name=recipient_kind]:checked").value;
        if (kind === "category") {
          body.recipient_category = body.purpose;  // "any partner offering" the purpose itself
        } else {
          body.recipient_association = f.recipient_association.value;
        }
        if (f.expires_on.value) {
          // The end of that day on the case worker's device (in Morocco: Moroccan time).
          body.expires_at = new Date(f.expires_on.value + "T23:59:59").toISOString();
        }
        if (!body.fields.length || (kind === "association" && !body.recipient_association)) {
          showError(consentForm, M.required);
          return;
        }
        var button = consentForm.querySelector("button[type=submit]");
        busy(button, true);
        api("POST", "/api/beneficiaries/" + encodeURIComponent(beneficiaryId) + "/consents", body).then(function () {
          window.location.reload();  // the server lists the new consent
        }, function (error) {
          busy(button, false);
          showError(consentForm, error);
        });
      });
    }

    if (referForm) {
      var referResult = document.getElementById("refer-result");
      referForm.addEventListener("submit", function (event) {
        event.preventDefault();
        clearError(referForm);
        referResult.hidden = true;
        var f = referForm.elements;
        var urgency = referForm.querySelector("input[name=urgency]:checked");
        var body = {
          beneficiary_id: beneficiaryId, service_category: f.service_category.value,
          to_association: f.to_association.value, reason: f.reason.value.trim(),
          urgency: urgency ? urgency.value : "normal", fields: checkedValues(referForm, "fields")
        };
        if (!body.to_association || !body.reason) {
          showError(referForm, M.required);
          return;
        }
        var button = referForm.querySelector("button[type=submit]");
        busy(button, true);
        api("POST", "/api/referrals", body).then(function (referral) {
          busy(button, false);
          referForm.reset();
          loadRecipients(referForm);
          document.getElementById("refer-open").href = "/referrals/" + encodeURIComponent(referral.id) +
            "?lang=" + encodeURIComponent(lang);
          referResult.hidden = false;
          referResult.scrollIntoView();
        }, function (error) {
          busy(button, false);
          showError(referForm, error);
        });
      });
    }
  }
})();
