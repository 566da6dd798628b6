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

  // A count in the page's language: the server gives each CLDR plural category's form (Arabic has six).
  function plural(forms, count) {
    if (!forms || typeof forms === "string") { return String(forms || "").replace("%(num)s", String(count)); }
    var category = window.Intl && Intl.PluralRules ? new Intl.PluralRules(M.lang || "fr").select(count) : "other";
    var text = forms[category] || forms.other || "";
    return text.replace("%(num)s", new Intl.NumberFormat(M.lang === "ar" ? "ar-MA" : M.lang).format(count));
  }

  // A readable message for an API error, in the page's language: its code's words when the page has them.
  function describe(error) {
    if (error.status === 401) {
      return M.signed_out || error.message;
    }
    if (error.fields) { return M.check_fields || M.error; }
    if (M.errors && M.errors[error.code]) { return M.errors[error.code]; }
    return ((M.error || "") + " " + (error.code || "")).trim();
  }

  // The API's field codes ({"reason": "required"}) shown translated at each field, as the server does
  // without JavaScript (templates/_fields.html): the form's element for that name, or one made after it.
  function showFieldErrors(container, fields) {
    Object.keys(fields || {}).forEach(function (path) {
      var name = path.split(".")[0];
      var input = container.querySelector("[name='" + name.replace(/'/g, "") + "']");
      var box = container.querySelector(".field-error[data-field='" + name.replace(/'/g, "") + "']");
      if (!box && input) {
        box = document.createElement("p");
        box.className = "field-error";
        box.setAttribute("data-field", name);
        box.id = name + "-error";
        (input.closest("label") || input).insertAdjacentElement("afterend", box);
      }
      if (!box) { return; }
      box.textContent = (M.field_errors && M.field_errors[fields[path]]) || fields[path];
      box.hidden = false;
      if (input) { input.setAttribute("aria-invalid", "true"); input.setAttribute("aria-describedby", box.id); }
    });
  }

  function showError(container, error) {
    var scope = container || document;
    if (error && error.fields) { showFieldErrors(scope, error.fields); }
    var box = scope.querySelector(".error") || document.querySelector(".error");
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
    var scope = container || document;
    var box = scope.querySelector(".error");
    if (box) { box.hidden = true; box.textContent = ""; }
    scope.querySelectorAll(".field-error").forEach(function (field) { field.hidden = true; field.textContent = ""; });
    scope.querySelectorAll("[aria-invalid]").forEach(function (input) { input.removeAttribute("aria-invalid"); });
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

  // Signing out is the header's form (POST /logout): it works the same with or without this script.

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
    if (text && M.unread) { text.textContent = plural(M.unread, count); }
  }

  document.querySelectorAll("button.mark-read").forEach(function (button) {
    button.addEventListener("click", function (event) {
      event.preventDefault();  // the form posts without JavaScript; with it, the API answers in place
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
  // Each step is a form the server takes without JavaScript (POST /referrals/<id>/<action>, a 303 back to the
  // referral): nothing to add here but the busy state, so a second tap waits for the first.

  document.querySelectorAll("form.referral-form, form.inline, form.consent-revoke-form, form.duplicate-form")
    .forEach(function (form) {
      form.addEventListener("submit", function () {
        form.querySelectorAll("button[type=submit]").forEach(function (button) {
          window.setTimeout(function () { button.disabled = true; }, 0);  // after the browser read its value
        });
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
