"""Web tip form channel: anyone may report a tip, anonymously, in English or Spanish.

Routes (one blueprint, `make_blueprint`):
  GET  /tip                        the form (?lang=es; default from Accept-Language)
  POST /tip                        submit: CSRF + honeypot + rate limit + validation, then 303
  GET  /tip/confirmation/<code>    reference number and what happens next (POST/redirect/GET)
  GET  /tip/exit                   Quick Exit without JavaScript (303 to the neutral site)
  POST /api/tips                   the same tip as JSON (no CSRF; Content-Type application/json)
  GET  /api/openapi.json           OpenAPI 3.1 description of /api/tips

Every submission becomes one Signal (channel webform). The external id is the form's
submission token (signed by the server, so a double click or a resubmission of the same form
is one signal and a client cannot pick another form's id), or the API's Idempotency-Key.

Safety (DESIGN §6): Quick Exit button and Esc leave with `location.replace`; no autocomplete on
the fields; no third-party assets; a strict CSP with the small script served from here; no-store
on every page. The rate limiter keys on a keyed hash of the client address (no address sits in
Redis) and fails open: a tip is taken even when the limiter's store is down. Nothing here logs
what a field holds: only field names, counts and signal ids.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, redirect, render_template, request, url_for
from flask_limiter import Limiter, RateLimitExceeded
from werkzeug.exceptions import RequestEntityTooLarge

from ..normalize import LanguageDetector, clean_text, normalize_phone
from ..signal import Channel, Location, Signal
from ..sink import Sink

__all__ = [
    "FIELDS",
    "LANGUAGES",
    "WebformConfig",
    "build_signal",
    "compose_text",
    "make_blueprint",
    "normalize_reference",
    "openapi_document",
    "tip_reference",
    "validate_tip",
]

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent / "webform_assets"
LANGUAGES: tuple[str, ...] = ("en", "es")
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
REFERENCE_RE = re.compile(r"^TIP-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class WebformConfig:
    """Every tunable of the tip form (config.yaml section `webform`)."""

    # Signs the CSRF and submission tokens and derives the reference numbers; required.
    # Pass settings.security.secret_key: a sub-key is derived from it, it is never used as is.
    secret_key: str = ""
    # Where Quick Exit and Esc go (location.replace: the form leaves no history entry).
    exit_url: str = "https://www.weather.gov"
    # The 24/7 hotline number shown on the form and the confirmation.
    hotline_number: str = "+1 555 0100"
    # Language when neither ?lang nor Accept-Language picks one of LANGUAGES.
    default_language: str = "en"
    # Largest request body accepted on POST /tip and /api/tips (413 above it).
    max_request_bytes: int = 256 * 1024
    # Longest "what happened" text (characters); the other fields have fixed, smaller limits.
    max_description_chars: int = 10_000
    # How long a form stays valid after it was loaded (CSRF token age).
    form_max_age_seconds: int = 4 * 3600
    # How long the confirmation page (reference number) can be reloaded.
    confirmation_max_age_seconds: int = 3600
    # Per-client submission limit (flask-limiter syntax), shared by the form and the API.
    rate_limit: str = "10 per minute;60 per hour"
    # Timeout (seconds) of each call to the limiter's Redis: a slow store must not stall a tip.
    limiter_timeout_seconds: float = 0.5
    # Key prefix of the limiter's counters in Redis.
    limiter_key_prefix: str = "hotline-webform"
    # Reverse proxies in front of the app that append to X-Forwarded-For (0 = use the socket
    # address). Behind one proxy set 1, or every tip would share the proxy's limit.
    trusted_proxies: int = 0
    # Name of the browser-session cookie the CSRF token is bound to (Path=/tip, HttpOnly, Lax).
    cookie_name: str = "tf_sid"
    # Secure flag of that cookie; None = when the request came over HTTPS.
    cookie_secure: bool | None = None


# ---- the fields ------------------------------------------------------------------------------

@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str  # text (multi-line) | line | choice | bool | state | zip | email | phone
    max_chars: int = 0
    choices: tuple[str, ...] = ()
    required: bool = False
    default: str | None = None
    contact: bool = False


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("danger_now", "choice", choices=("yes", "no"), required=True),
    FieldSpec("what_happened", "text", 10_000, required=True),
    FieldSpec("address", "line", 300),
    FieldSpec("city", "line", 100),
    FieldSpec("state", "state", 2),
    FieldSpec("zip", "zip", 10),
    FieldSpec("when", "line", 300),
    FieldSpec("people_count", "line", 100),
    FieldSpec("minors_involved", "choice", choices=("yes", "no", "unknown"), default="unknown"),
    FieldSpec("ages", "line", 200),
    FieldSpec("genders", "line", 200),
    FieldSpec("nationality", "line", 200),
    FieldSpec("exploitation_type", "choice", choices=("sex", "labor", "both", "unknown"), default="unknown"),
    FieldSpec("work_type", "line", 300),
    FieldSpec("vehicles", "text", 1000),
    FieldSpec("websites", "text", 1000),
    FieldSpec("phone_numbers", "text", 1000),
    FieldSpec("contact_consent", "bool"),
    FieldSpec("contact_name", "line", 200, contact=True),
    FieldSpec("contact_phone", "phone", 40, contact=True),
    FieldSpec("contact_email", "email", 254, contact=True),
    FieldSpec("contact_safe_time", "line", 300, contact=True),
)
FIELD_NAMES = frozenset(f.name for f in FIELDS)

US_STATES: tuple[tuple[str, str], ...] = (
    ("AL", "Alabama"), ("AK", "Alaska"), ("AZ", "Arizona"), ("AR", "Arkansas"), ("CA", "California"),
    ("CO", "Colorado"), ("CT", "Connecticut"), ("DE", "Delaware"), ("DC", "District of Columbia"),
    ("FL", "Florida"), ("GA", "Georgia"), ("HI", "Hawaii"), ("ID", "Idaho"), ("IL", "Illinois"),
    ("IN", "Indiana"), ("IA", "Iowa"), ("KS", "Kansas"), ("KY", "Kentucky"), ("LA", "Louisiana"),
    ("ME", "Maine"), ("MD", "Maryland"), ("MA", "Massachusetts"), ("MI", "Michigan"), ("MN", "Minnesota"),
    ("MS", "Mississippi"), ("MO", "Missouri"), ("MT", "Montana"), ("NE", "Nebraska"), ("NV", "Nevada"),
    ("NH", "New Hampshire"), ("NJ", "New Jersey"), ("NM", "New Mexico"), ("NY", "New York"),
    ("NC", "North Carolina"), ("ND", "North Dakota"), ("OH", "Ohio"), ("OK", "Oklahoma"), ("OR", "Oregon"),
    ("PA", "Pennsylvania"), ("RI", "Rhode Island"), ("SC", "South Carolina"), ("SD", "South Dakota"),
    ("TN", "Tennessee"), ("TX", "Texas"), ("UT", "Utah"), ("VT", "Vermont"), ("VA", "Virginia"),
    ("WA", "Washington"), ("WV", "West Virginia"), ("WI", "Wisconsin"), ("WY", "Wyoming"),
    ("AS", "American Samoa"), ("GU", "Guam"), ("MP", "Northern Mariana Islands"), ("PR", "Puerto Rico"),
    ("VI", "U.S. Virgin Islands"),
)
_STATE_CODES = frozenset(code for code, _ in US_STATES)
_ZIP = re.compile(r"^\d{5}(?:-\d{4})?$")
_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+\.[^@\s<>()\[\],;:\"]{2,}$")
_E164 = re.compile(r"^\+\d{8,15}$")
_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:-]{16,200}$")
_COOKIE_VALUE = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
_SUBMISSION_TOKEN = re.compile(r"^[A-Za-z0-9_-]{24}\.[A-Za-z0-9_-]{22}$")


# ---- texts (en, es) ------------------------------------------------------------------------------

TEXTS: dict[str, dict[str, Any]] = {
    "en": {
        "title": "Report a tip",
        "heading": "Report a tip",
        "intro": "Anyone can report a tip about possible human trafficking, and you can stay anonymous. "
                 "Only the first two questions are required: tell us what you know, as much or as little "
                 "as you can.",
        "danger_note": "If someone is in immediate danger, call 911 now.",
        "call_note": "To talk to someone, call the hotline 24 hours a day at {number}.",
        "quick_exit": "Quick exit",
        "esc_hint": "or press Esc",
        "safety_note": "Safety: Quick exit (or the Esc key) leaves this page at once and it does not stay in "
                       "the back button. If someone checks this device, you may also want to clear your "
                       "browsing history.",
        "switch_label": "Español",
        "switch_lang": "es",
        "required": "required",
        "optional": "optional",
        "send": "Send tip",
        "honeypot": "Leave this field empty",
        "errors_heading": "Please check these answers:",
        "yes": "Yes",
        "no": "No",
        "unknown": "I don't know",
        "choose_state": "Choose a state (optional)",
        "sections": {
            "danger": "Immediate danger",
            "what": "What happened",
            "where": "Where",
            "when": "When",
            "who": "Who is involved",
            "kind": "What kind of situation",
            "details": "Vehicles, websites, phone numbers",
            "contact": "Your contact details (optional)",
        },
        "labels": {
            "danger_now": "Is anyone in immediate danger right now?",
            "what_happened": "What happened? What did you see or hear?",
            "address": "Address or place",
            "city": "City",
            "state": "State",
            "zip": "ZIP code",
            "when": "When did it happen, or when did you see it?",
            "people_count": "How many people are involved?",
            "minors_involved": "Is anyone under 18 involved?",
            "ages": "Ages (if you know them)",
            "genders": "Genders",
            "nationality": "Nationality or language (if known)",
            "exploitation_type": "What do you suspect?",
            "work_type": "Type of work or business",
            "vehicles": "Vehicles (make, color, plate)",
            "websites": "Websites, ads or social media accounts",
            "phone_numbers": "Phone numbers you saw or heard",
            "contact_consent": "Yes, the hotline may contact me about this tip.",
            "contact_name": "Name (or a name we can use)",
            "contact_phone": "Phone",
            "contact_email": "Email",
            "contact_safe_time": "When and how is it safe to contact you?",
        },
        "hints": {
            "danger_now": "If yes, call 911 now, then send this form or call the hotline.",
            "what_happened": "Describe what you saw, heard or know. Please do not put yourself at risk to find "
                             "out more.",
            "address": "A street address, a business name or a landmark.",
            "zip": "5 digits, for example 12345.",
            "ages": "Estimates are fine, for example \"about 16\".",
            "work_type": "For example: restaurant, farm, nail salon, massage business, construction, "
                         "housekeeping.",
            "contact_consent": "Leave this unticked to stay anonymous: contact details are then ignored.",
            "contact_safe_time": "For example: \"weekdays after 6 pm, do not leave a voicemail\".",
        },
        "choices": {
            "danger_now": {"yes": "Yes", "no": "No"},
            "minors_involved": {"yes": "Yes", "no": "No", "unknown": "I don't know"},
            "exploitation_type": {"sex": "Commercial sex", "labor": "Forced labor or labor exploitation",
                                  "both": "Both", "unknown": "Not sure"},
        },
        "errors": {
            "required_danger_now": "Please answer: is anyone in immediate danger right now?",
            "required_what_happened": "Please tell us what happened.",
            "required": "This field is required.",
            "too_long": "Please keep this under {n} characters.",
            "choice": "Please choose one of the options.",
            "state": "Choose a state from the list, or leave it empty.",
            "zip": "Enter a 5-digit ZIP code (like 12345), or leave it empty.",
            "email": "This email address does not look right.",
            "phone": "This phone number does not look right. Include the area code.",
            "contact_needed": "To be contacted, give a phone number or an email, or untick the box to stay "
                              "anonymous.",
            "string": "Must be a string.",
            "boolean": "Must be true or false.",
            "unknown_field": "Unknown field.",
            "language": "Must be one of: en, es.",
            "idempotency_key": "Must be 16 to 200 characters: letters, digits, '.', '_', ':' or '-'.",
            "json": "The body must be a JSON object.",
            "content_type": "Send the tip as JSON with 'Content-Type: application/json'.",
        },
        "notices": {
            "csrf": "This form has expired or could not be verified, so your tip has not been sent yet. "
                    "Your answers are still below: please check them and press \"Send tip\" again. If this keeps "
                    "happening, allow cookies for this site, or call the hotline at {number}.",
            "rate_limited": "Too many tips were sent from your connection in a short time, so this one has not "
                            "been sent yet. Your answers are still below: please wait a minute and press \"Send "
                            "tip\" again, or call the hotline at {number}. If someone is in danger right now, "
                            "call 911.",
            "unavailable": "We could not save your tip just now. Your answers are still below: please try again "
                           "in a minute, or call the hotline at {number}. If someone is in danger right now, "
                           "call 911.",
        },
        "api": {
            "rate_limited": "Too many tips from this client in a short time; retry later. If someone is in "
                            "danger right now, call 911.",
            "too_large": "The request is larger than {n} bytes.",
            "unavailable": "The tip could not be stored just now; retry with the same Idempotency-Key.",
        },
        "thanks_title": "Tip received",
        "thanks_heading": "Thank you. Your tip was received.",
        "danger_banner_title": "Someone is in danger right now?",
        "danger_banner": "Call 911 now. Then call the hotline at {number}, 24 hours a day.",
        "reference_label": "Your reference number",
        "reference_note": "If you call us about this tip, give this number. Keep it only where no one who could "
                          "harm you will see it.",
        "next_heading": "What happens next",
        "next_steps": [
            "Tips are reviewed every day. Urgent cases are handled immediately.",
            "If you agreed to be contacted, an advocate may reach you the way you asked. Otherwise you will "
            "not hear from us: your tip stays anonymous.",
            "If anyone is in immediate danger, call 911.",
        ],
        "another": "Report another tip",
        "expired_title": "Page expired",
        "expired": "This confirmation page has expired. Your tip was received if you saw its reference number. "
                   "To check, call the hotline at {number}.",
        "too_large_title": "Too long",
        "too_large": "Your tip is too long to send in one piece. Please shorten it, or call the hotline at "
                     "{number}.",
        "back": "Back to the form",
        "api_next_steps": "Thank you, your tip was received. Tips are reviewed every day and urgent cases "
                          "immediately. Give the reference number {reference} if you contact the hotline about "
                          "this tip. If anyone is in immediate danger, call 911.",
        "api_danger_steps": "Someone is in danger right now: call 911 now, then call the hotline at {number}. ",
    },
    "es": {
        "title": "Enviar un aviso",
        "heading": "Enviar un aviso",
        "intro": "Cualquier persona puede enviar un aviso sobre una posible situación de trata de personas, "
                 "y puede hacerlo de forma anónima. Solo las dos primeras preguntas son obligatorias: "
                 "cuéntenos lo que sepa, mucho o poco.",
        "danger_note": "Si alguien está en peligro inmediato, llame al 911 ahora.",
        "call_note": "Para hablar con alguien, llame a la línea de ayuda las 24 horas al {number}.",
        "quick_exit": "Salida rápida",
        "esc_hint": "o pulse Esc",
        "safety_note": "Seguridad: la Salida rápida (o la tecla Esc) cierra esta página al instante y no queda "
                       "en el botón de volver. Si alguien revisa este dispositivo, también puede borrar el "
                       "historial del navegador.",
        "switch_label": "English",
        "switch_lang": "en",
        "required": "obligatorio",
        "optional": "opcional",
        "send": "Enviar aviso",
        "honeypot": "Deje este campo vacío",
        "errors_heading": "Revise estas respuestas:",
        "yes": "Sí",
        "no": "No",
        "unknown": "No lo sé",
        "choose_state": "Elija un estado (opcional)",
        "sections": {
            "danger": "Peligro inmediato",
            "what": "Qué pasó",
            "where": "Dónde",
            "when": "Cuándo",
            "who": "Quiénes están involucrados",
            "kind": "Qué tipo de situación",
            "details": "Vehículos, sitios web, números de teléfono",
            "contact": "Sus datos de contacto (opcional)",
        },
        "labels": {
            "danger_now": "¿Hay alguien en peligro inmediato ahora mismo?",
            "what_happened": "¿Qué pasó? ¿Qué vio o escuchó?",
            "address": "Dirección o lugar",
            "city": "Ciudad",
            "state": "Estado",
            "zip": "Código postal (ZIP)",
            "when": "¿Cuándo pasó, o cuándo lo vio?",
            "people_count": "¿Cuántas personas están involucradas?",
            "minors_involved": "¿Hay menores de 18 años involucrados?",
            "ages": "Edades (si las sabe)",
            "genders": "Géneros",
            "nationality": "Nacionalidad o idioma (si lo sabe)",
            "exploitation_type": "¿Qué sospecha?",
            "work_type": "Tipo de trabajo o negocio",
            "vehicles": "Vehículos (marca, color, placa)",
            "websites": "Sitios web, anuncios o cuentas de redes sociales",
            "phone_numbers": "Números de teléfono que vio o escuchó",
            "contact_consent": "Sí, la línea de ayuda puede contactarme sobre este aviso.",
            "contact_name": "Nombre (o un nombre que podamos usar)",
            "contact_phone": "Teléfono",
            "contact_email": "Correo electrónico",
            "contact_safe_time": "¿Cuándo y cómo es seguro contactarle?",
        },
        "hints": {
            "danger_now": "Si la respuesta es sí, llame al 911 ahora y después envíe este formulario o llame a "
                          "la línea de ayuda.",
            "what_happened": "Describa lo que vio, escuchó o sabe. No se ponga en riesgo para averiguar más.",
            "address": "Una dirección, el nombre de un negocio o un punto de referencia.",
            "zip": "5 dígitos, por ejemplo 12345.",
            "ages": "Un cálculo aproximado está bien, por ejemplo \"unos 16\".",
            "work_type": "Por ejemplo: restaurante, campo, salón de uñas, negocio de masajes, construcción, "
                         "limpieza de casas.",
            "contact_consent": "Déjelo sin marcar para seguir en el anonimato: así no se guardan sus datos de "
                               "contacto.",
            "contact_safe_time": "Por ejemplo: \"entre semana después de las 6 pm, no deje mensaje de voz\".",
        },
        "choices": {
            "danger_now": {"yes": "Sí", "no": "No"},
            "minors_involved": {"yes": "Sí", "no": "No", "unknown": "No lo sé"},
            "exploitation_type": {"sex": "Comercio sexual", "labor": "Trabajo forzado o explotación laboral",
                                  "both": "Ambos", "unknown": "No estoy seguro/a"},
        },
        "errors": {
            "required_danger_now": "Responda: ¿hay alguien en peligro inmediato ahora mismo?",
            "required_what_happened": "Cuéntenos qué pasó.",
            "required": "Este campo es obligatorio.",
            "too_long": "Use menos de {n} caracteres.",
            "choice": "Elija una de las opciones.",
            "state": "Elija un estado de la lista, o déjelo vacío.",
            "zip": "Escriba un código postal de 5 dígitos (como 12345), o déjelo vacío.",
            "email": "Este correo electrónico no parece correcto.",
            "phone": "Este número de teléfono no parece correcto. Incluya el código de área.",
            "contact_needed": "Para que le contactemos, escriba un teléfono o un correo electrónico, o desmarque "
                              "la casilla para seguir en el anonimato.",
            "string": "Debe ser un texto.",
            "boolean": "Debe ser true o false.",
            "unknown_field": "Campo desconocido.",
            "language": "Debe ser uno de: en, es.",
            "idempotency_key": "Debe tener de 16 a 200 caracteres: letras, dígitos, '.', '_', ':' o '-'.",
            "json": "El cuerpo debe ser un objeto JSON.",
            "content_type": "Envíe el aviso como JSON con 'Content-Type: application/json'.",
        },
        "notices": {
            "csrf": "Este formulario caducó o no se pudo verificar, así que su aviso todavía no se envió. Sus "
                    "respuestas siguen abajo: revíselas y pulse \"Enviar aviso\" otra vez. Si vuelve a pasar, "
                    "permita las cookies para este sitio o llame a la línea de ayuda al {number}.",
            "rate_limited": "Se enviaron demasiados avisos desde su conexión en poco tiempo, así que este todavía "
                            "no se envió. Sus respuestas siguen abajo: espere un minuto y pulse \"Enviar aviso\" "
                            "otra vez, o llame a la línea de ayuda al {number}. Si alguien está en peligro ahora "
                            "mismo, llame al 911.",
            "unavailable": "No pudimos guardar su aviso en este momento. Sus respuestas siguen abajo: inténtelo "
                           "de nuevo en un minuto o llame a la línea de ayuda al {number}. Si alguien está en "
                           "peligro ahora mismo, llame al 911.",
        },
        "api": {
            "rate_limited": "Demasiados avisos de este cliente en poco tiempo; inténtelo más tarde. Si alguien "
                            "está en peligro ahora mismo, llame al 911.",
            "too_large": "La solicitud supera los {n} bytes.",
            "unavailable": "No se pudo guardar el aviso en este momento; reintente con la misma "
                           "Idempotency-Key.",
        },
        "thanks_title": "Aviso recibido",
        "thanks_heading": "Gracias. Recibimos su aviso.",
        "danger_banner_title": "¿Alguien está en peligro ahora mismo?",
        "danger_banner": "Llame al 911 ahora. Después llame a la línea de ayuda al {number}, las 24 horas.",
        "reference_label": "Su número de referencia",
        "reference_note": "Si nos llama por este aviso, díganos este número. Guárdelo solo donde no lo vea nadie "
                          "que pueda hacerle daño.",
        "next_heading": "Qué pasa ahora",
        "next_steps": [
            "Revisamos los avisos todos los días. Los casos urgentes se atienden de inmediato.",
            "Si aceptó que le contactemos, una persona de apoyo le buscará de la forma que pidió. Si no, no "
            "sabrá de nosotros: su aviso sigue siendo anónimo.",
            "Si alguien está en peligro inmediato, llame al 911.",
        ],
        "another": "Enviar otro aviso",
        "expired_title": "Página caducada",
        "expired": "Esta página de confirmación caducó. Si vio su número de referencia, su aviso fue recibido. "
                   "Para confirmarlo, llame a la línea de ayuda al {number}.",
        "too_large_title": "Demasiado largo",
        "too_large": "Su aviso es demasiado largo para enviarlo de una vez. Acórtelo, o llame a la línea de "
                     "ayuda al {number}.",
        "back": "Volver al formulario",
        "api_next_steps": "Gracias, recibimos su aviso. Revisamos los avisos todos los días y los casos urgentes "
                          "de inmediato. Dé el número de referencia {reference} si contacta a la línea de ayuda "
                          "por este aviso. Si alguien está en peligro inmediato, llame al 911.",
        "api_danger_steps": "Alguien está en peligro ahora mismo: llame al 911 ahora y después a la línea de "
                            "ayuda al {number}. ",
    },
}


# ---- validation ------------------------------------------------------------------------------

def _limit(spec: FieldSpec, max_description_chars: int) -> int:
    return max_description_chars if spec.name == "what_happened" else spec.max_chars


def validate_tip(data: Mapping[str, Any], lang: str, *, json_types: bool = False,
                 max_description_chars: int = 10_000) -> tuple[dict[str, Any], dict[str, str]]:
    """Check and clean one submission. Returns (fields, errors); errors map a field to a message
    in `lang`. Empty optional fields are left out; contact fields count only with consent.

    json_types: values come from JSON (strings, a boolean consent, a number of people may be a
    number) rather than from a form (strings only, the consent checkbox is present or not)."""
    msgs = TEXTS[lang]["errors"]
    clean: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in FIELDS:
        value = data.get(spec.name)
        if spec.kind == "bool":
            if json_types:
                if value is None or isinstance(value, bool):
                    clean[spec.name] = bool(value)
                else:
                    errors[spec.name] = msgs["boolean"]
            else:
                clean[spec.name] = str(value or "").strip().lower() in ("yes", "on", "true", "1")
            continue
        if value is None:
            value = ""
        if json_types and spec.name == "people_count" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            errors[spec.name] = msgs["string"]
            continue
        text = clean_text(value, max_chars=len(value) + 1)
        if spec.kind != "text":
            text = " ".join(text.split())
        if not text:
            if spec.required:
                errors[spec.name] = msgs.get(f"required_{spec.name}", msgs["required"])
            elif spec.default is not None:
                clean[spec.name] = spec.default
            continue
        limit = _limit(spec, max_description_chars)
        if spec.kind not in ("choice", "state") and len(text) > limit:
            errors[spec.name] = msgs["too_long"].format(n=limit)
            continue
        if spec.kind == "choice":
            text = text.lower()
            if text not in spec.choices:
                errors[spec.name] = msgs["choice"]
                continue
        elif spec.kind == "state":
            text = text.upper()
            if text not in _STATE_CODES:
                errors[spec.name] = msgs["state"]
                continue
        elif spec.kind == "zip":
            if not _ZIP.match(text):
                errors[spec.name] = msgs["zip"]
                continue
        elif spec.kind == "email":
            if not _EMAIL.match(text):
                errors[spec.name] = msgs["email"]
                continue
        elif spec.kind == "phone":
            phone = normalize_phone(text, default_region="US")
            if phone is None or not _E164.match(phone.e164):
                errors[spec.name] = msgs["phone"]
                continue
            text = phone.e164
        clean[spec.name] = text
    if clean.get("contact_consent"):
        if not any(clean.get(k) for k in ("contact_phone", "contact_email")) and \
                not any(k in errors for k in ("contact_phone", "contact_email")):
            errors["contact_phone"] = msgs["contact_needed"]
    else:
        # Without consent the contact fields are ignored, mistakes in them included.
        for spec in FIELDS:
            if spec.contact:
                clean.pop(spec.name, None)
                errors.pop(spec.name, None)
    return clean, errors


# ---- the signal ------------------------------------------------------------------------------

_SUSPECTED = {"sex": "commercial sex", "labor": "forced labor or labor exploitation",
              "both": "commercial sex and forced labor", "unknown": "not sure"}


def compose_text(fields: Mapping[str, Any]) -> str:
    """The tip as one readable text, labels in English (advocates and the triage rules read it).

    Wording matters to triage: "minors" is written only when the reporter answered yes (the
    rules read the word itself as a minor indicator), and immediate danger is stated plainly."""
    lines: list[str] = []
    if fields.get("danger_now") == "yes":
        lines.append("EMERGENCY: this is an emergency. The reporter says someone is in danger right now.")
    lines.append(f"What happened: {fields.get('what_happened', '')}")
    state_zip = " ".join(x for x in (fields.get("state"), fields.get("zip")) if x)
    where = ", ".join(x for x in (fields.get("address"), fields.get("city"), state_zip) if x)
    if where:
        lines.append(f"Where: {where}")
    for key, label in (("when", "When"), ("people_count", "Number of people")):
        if fields.get(key):
            lines.append(f"{label}: {fields[key]}")
    minors = fields.get("minors_involved", "unknown")
    lines.append({"yes": "Minors involved: yes (someone under 18)",
                  "no": "Age group: adults only, according to the reporter"}.get(minors, "Age group: not known"))
    for key, label in (("ages", "Ages"), ("genders", "Genders"), ("nationality", "Nationality or language")):
        if fields.get(key):
            lines.append(f"{label}: {fields[key]}")
    lines.append(f"Suspected: {_SUSPECTED[fields.get('exploitation_type', 'unknown')]}")
    for key, label in (("work_type", "Type of work or business"), ("vehicles", "Vehicles"),
                       ("websites", "Websites or ads"), ("phone_numbers", "Phone numbers seen")):
        if fields.get(key):
            lines.append(f"{label}: {fields[key]}")
    if fields.get("danger_now") == "no":
        lines.append("Immediate danger: the reporter answered no.")
    if fields.get("contact_consent"):
        lines.append("Contact: the reporter agrees to be contacted (details kept with the tip).")
        if fields.get("contact_name"):
            lines.append(f"Name given: {fields['contact_name']}")
        if fields.get("contact_safe_time"):
            lines.append(f"Safe way or time to contact: {fields['contact_safe_time']}")
    else:
        lines.append("Contact: anonymous (the reporter did not ask to be contacted).")
    return "\n".join(lines)


def build_signal(fields: Mapping[str, Any], *, lang: str, external_id: str, reference: str, source: str,
                 received_at: datetime, detector: LanguageDetector) -> Signal:
    """A validated submission -> Signal (channel webform)."""
    consent = bool(fields.get("contact_consent"))
    sender = sender_region = None
    if consent:
        phone = normalize_phone(fields.get("contact_phone")) if fields.get("contact_phone") else None
        if phone is not None:
            sender, sender_region = phone.e164, phone.region
        elif fields.get("contact_email"):
            sender = str(fields["contact_email"]).lower()
    # The reporter's own words decide the language when the detector is sure; otherwise the
    # language of the form they chose is the best evidence.
    detected = detector.detect(str(fields.get("what_happened", "")))
    if detected.code != "und" and (detected.code == lang or detected.confidence >= 0.8):
        language, confidence = detected.code, detected.confidence
    else:
        language, confidence = lang, 0.5
    flags = []
    if fields.get("danger_now") == "yes":
        flags.append("danger_now")
    if not consent:
        flags.append("anonymous")
    return Signal(
        channel=Channel.WEBFORM,
        external_id=external_id,
        received_at=received_at,
        sender=sender,
        sender_region=sender_region,
        location=Location(state=fields.get("state"), city=fields.get("city"), zip=fields.get("zip")),
        text=compose_text(fields),
        subject=None,
        language=language,
        language_confidence=round(confidence, 3),
        raw={"reference": reference, "source": source, "form_language": lang, "fields": dict(fields)},
        flags=tuple(flags),
    )


# ---- tokens and references ------------------------------------------------------------------------

def _mac(key: bytes, *parts: str) -> bytes:
    return hmac.new(key, "\x1f".join(parts).encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _derive(secret_key: str, label: str) -> bytes:
    return _mac(secret_key.encode(), "hotline-webform-v1", label)


def _crockford(data: bytes, chars: int) -> str:
    n = int.from_bytes(data, "big")
    bits = len(data) * 8
    return "".join(CROCKFORD[(n >> (bits - 5 * (i + 1))) & 31] for i in range(chars))


def tip_reference(secret_key: str, external_id: str) -> str:
    """The reference number a reporter can quote: TIP- and 8 Crockford base32 characters of a keyed
    hash of the submission's external id (so the same submission always has the same number)."""
    code = _crockford(_mac(_derive(secret_key, "reference"), external_id)[:5], 8)
    return f"TIP-{code[:4]}-{code[4:]}"


def normalize_reference(text: str) -> str | None:
    """A reference as a person may type or say it ("tip 7k3m 9qxd", "TIP-7K3M-9QXO") -> canonical."""
    s = re.sub(r"[\s\-_.]", "", (text or "").upper())
    if s.startswith("TIP"):
        s = s[3:]
    s = s.translate(str.maketrans({"O": "0", "I": "1", "L": "1"}))
    if len(s) != 8 or any(c not in CROCKFORD for c in s):
        return None
    return f"TIP-{s[:4]}-{s[4:]}"


@dataclass(frozen=True)
class _Tokens:
    """Stateless tokens signed with sub-keys of the secret: nothing to store, any web process checks them."""

    secret_key: str
    csrf_key: bytes
    submission_key: bytes
    confirmation_key: bytes
    client_key: bytes

    @classmethod
    def derive(cls, secret_key: str) -> _Tokens:
        return cls(secret_key, _derive(secret_key, "csrf"), _derive(secret_key, "submission"),
                   _derive(secret_key, "confirmation"), _derive(secret_key, "client"))

    def new_submission(self) -> str:
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{_b64(_mac(self.submission_key, nonce))[:22]}"

    def submission_ok(self, token: str | None) -> bool:
        if not token or not _SUBMISSION_TOKEN.match(token):
            return False
        nonce, sig = token.split(".")
        return hmac.compare_digest(sig, _b64(_mac(self.submission_key, nonce))[:22])

    def csrf(self, cookie: str, submission: str, now: int) -> str:
        return f"{now}.{_b64(_mac(self.csrf_key, cookie, submission, str(now)))[:32]}"

    def csrf_ok(self, token: str | None, cookie: str | None, submission: str, now: int, max_age: int) -> bool:
        if not token or not cookie or "." not in token:
            return False
        ts, _, sig = token.partition(".")
        if not ts.isdigit() or not (now - max_age <= int(ts) <= now + 300):
            return False
        return hmac.compare_digest(sig, _b64(_mac(self.csrf_key, cookie, submission, ts))[:32])

    def confirmation(self, reference: str, lang: str, danger: bool, now: int) -> str:
        payload = f"{reference}.{lang}.{int(danger)}.{now}"
        return f"{payload}.{_b64(_mac(self.confirmation_key, payload))[:22]}"

    def read_confirmation(self, code: str, now: int, max_age: int) -> tuple[str, str, bool] | None:
        parts = code.split(".")
        if len(parts) != 5:
            return None
        reference, lang, danger, ts, sig = parts
        payload = ".".join(parts[:4])
        if not hmac.compare_digest(sig, _b64(_mac(self.confirmation_key, payload))[:22]):
            return None
        if not REFERENCE_RE.match(reference) or lang not in LANGUAGES or danger not in ("0", "1") \
                or not ts.isdigit() or not (now - max_age <= int(ts) <= now + 300):
            return None
        return reference, lang, danger == "1"

    def client(self, address: str) -> str:
        # The limiter's key: a keyed hash, so no reporter's address is ever written to Redis.
        return _b64(_mac(self.client_key, address))[:24]


# ---- OpenAPI ----------------------------------------------------------------------------------------

def _field_schema(spec: FieldSpec, config: WebformConfig) -> dict[str, Any]:
    en = TEXTS["en"]
    desc = en["labels"][spec.name]
    if spec.name in en["hints"]:
        desc += " " + en["hints"][spec.name]
    if spec.contact:
        desc += " Ignored unless contact_consent is true."
    if spec.kind == "bool":
        return {"type": "boolean", "default": False, "description": desc}
    schema: dict[str, Any] = {"type": "string", "description": desc}
    if spec.kind == "choice":
        schema["enum"] = list(spec.choices)
        if spec.default:
            schema["default"] = spec.default
    elif spec.kind == "state":
        schema["enum"] = [code for code, _ in US_STATES]
        schema["description"] += " Two-letter USPS code."
    elif spec.kind == "zip":
        schema["pattern"] = r"^\d{5}(-\d{4})?$"
    elif spec.kind == "email":
        schema["format"] = "email"
    if spec.kind not in ("choice", "state"):
        schema["maxLength"] = _limit(spec, config.max_description_chars)
    if spec.name == "what_happened":
        schema["minLength"] = 1
    if spec.name == "people_count":
        schema["type"] = ["string", "integer"]
    return schema


def openapi_document(config: WebformConfig | None = None) -> dict[str, Any]:
    """OpenAPI 3.1 description of POST /api/tips (the request schema comes from FIELDS, the same
    table the server validates with)."""
    config = config or WebformConfig()
    props = {spec.name: _field_schema(spec, config) for spec in FIELDS}
    props["language"] = {"type": "string", "enum": list(LANGUAGES),
                         "description": "Language of the tip and of the answer's messages "
                                        "(default: from Accept-Language, else English)."}
    errors_schema = {
        "type": "object", "required": ["errors"], "additionalProperties": False,
        "properties": {"errors": {
            "type": "object", "additionalProperties": {"type": "string"},
            "description": "Field name (or 'body', 'Idempotency-Key', 'rate_limit', 'service') -> message.",
        }},
    }

    def error(description: str) -> dict[str, Any]:
        return {"description": description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}}}

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Hotline tip API",
            "version": "1.0.0",
            "description": "Report a tip to the hotline, as the web form does. Tips are reviewed every day, "
                           "urgent cases immediately. Someone in immediate danger: call 911.",
        },
        "servers": [{"url": "/"}],
        "paths": {
            "/api/tips": {
                "post": {
                    "operationId": "submitTip",
                    "summary": "Submit a tip",
                    "parameters": [{
                        "name": "Idempotency-Key", "in": "header", "required": False,
                        "description": "A unique key per tip (e.g. a UUID). Retrying with the same key "
                                       "never creates a second tip; the answer carries the same reference.",
                        "schema": {"type": "string", "pattern": _IDEMPOTENCY_KEY.pattern},
                    }],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/TipSubmission"},
                            "example": {"danger_now": "no", "what_happened": "Workers sleep in the back of the "
                                        "restaurant and are never paid.", "city": "Springfield", "state": "IL",
                                        "minors_involved": "unknown", "exploitation_type": "labor"},
                        }},
                    },
                    "responses": {
                        "201": {
                            "description": "Tip accepted (also for a retry with the same Idempotency-Key, "
                                           "which then carries the header Idempotent-Replayed: true).",
                            "headers": {"Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]}}},
                            "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/TipAccepted"}}},
                        },
                        "400": error("Invalid tip: a message per field."),
                        "413": error("Request body too large."),
                        "415": error("Content-Type is not application/json."),
                        "429": error("Too many tips from this client; see Retry-After."),
                        "503": error("The tip could not be stored; retry with the same Idempotency-Key."),
                    },
                },
            },
        },
        "components": {
            "schemas": {
                "TipSubmission": {
                    "type": "object",
                    "required": [s.name for s in FIELDS if s.required],
                    "additionalProperties": False,
                    "properties": props,
                },
                "TipAccepted": {
                    "type": "object",
                    "required": ["reference", "next_steps", "danger_now", "language"],
                    "properties": {
                        "reference": {"type": "string", "pattern": REFERENCE_RE.pattern,
                                      "description": "Reference number the reporter can quote."},
                        "next_steps": {"type": "string", "description": "What happens next, in `language`."},
                        "danger_now": {"type": "boolean"},
                        "language": {"type": "string", "enum": list(LANGUAGES)},
                    },
                },
                "Errors": errors_schema,
            },
        },
    }


# ---- the blueprint --------------------------------------------------------------------------------

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'; object-src 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    # Nothing of the form, the confirmation or the script stays in the browser's cache.
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


def _limiter_uri(uri: str) -> str:
    # The embedded Redis is a unix socket (unix:///…/redis.sock); `limits` spells that redis+unix://.
    return "redis+" + uri if uri.startswith("unix://") else uri


def make_blueprint(config: WebformConfig, sink: Sink, detector: LanguageDetector, limiter_storage_uri: str,
                   clock: Callable[[], datetime] = _utcnow) -> Blueprint:
    if not config.secret_key:
        raise ValueError("WebformConfig.secret_key is required (pass settings.security.secret_key)")
    if config.default_language not in LANGUAGES:
        raise ValueError(f"WebformConfig.default_language must be one of {', '.join(LANGUAGES)}")
    tokens = _Tokens.derive(config.secret_key)
    bp = Blueprint("webform", __name__, template_folder=str(ASSETS / "templates"),
                   static_folder=str(ASSETS / "static"), static_url_path="/tip/static")
    honeypot_hits = itertools.count(1)

    def client_address() -> str:
        if config.trusted_proxies > 0:
            forwarded = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",") if a.strip()]
            if forwarded:
                return forwarded[-min(config.trusted_proxies, len(forwarded))]
        return request.remote_addr or "unknown"

    storage_uri = _limiter_uri(limiter_storage_uri)
    storage_options: dict[str, Any] = {}
    if storage_uri.startswith(("redis", "rediss")):
        storage_options = {"socket_connect_timeout": config.limiter_timeout_seconds,
                           "socket_timeout": config.limiter_timeout_seconds}
    limiter = Limiter(
        lambda: tokens.client(client_address()),
        storage_uri=storage_uri,
        storage_options=storage_options,
        key_prefix=config.limiter_key_prefix,
        # Fail open: if the store is down, count in this process's memory meanwhile, and should even
        # that fail, let the tip through. A lost tip costs more than a flood.
        swallow_errors=True,
        in_memory_fallback_enabled=True,
        headers_enabled=True,
    )
    # The limiter hooks the whole app; it must never touch another channel's requests (nor its store).
    limiter.request_filter(lambda: request.blueprint != bp.name)
    bp.record_once(lambda state: limiter.init_app(state.app))
    submission_limit = limiter.shared_limit(config.rate_limit, scope="webform-submit")

    def now_ts() -> int:
        return int(clock().timestamp())

    def negotiated_language() -> str:
        asked = (request.args.get("lang") or "").strip().lower()
        if asked in LANGUAGES:
            return asked
        return request.accept_languages.best_match(LANGUAGES, default=config.default_language) or \
            config.default_language

    def t(lang: str) -> dict[str, Any]:
        return TEXTS[lang]

    def browser_cookie() -> tuple[str, bool]:
        value = request.cookies.get(config.cookie_name, "")
        if _COOKIE_VALUE.match(value):
            return value, False
        return secrets.token_urlsafe(24), True

    def set_cookie(resp: Response, value: str) -> None:
        secure = request.is_secure if config.cookie_secure is None else config.cookie_secure
        # A browser-session cookie (no expiry): it goes when the browser closes.
        resp.set_cookie(config.cookie_name, value, path="/tip", httponly=True, samesite="Lax", secure=secure)

    def page(template: str, lang: str, status: int = 200, **context: Any) -> Response:
        texts = t(lang)
        html = render_template(
            template, lang=lang, t=texts, exit_url=config.exit_url, number=config.hotline_number,
            other_lang=texts["switch_lang"], **context)
        return Response(html, status=status, mimetype="text/html")

    def form_page(lang: str, values: Mapping[str, Any] | None = None, errors: Mapping[str, str] | None = None,
                  notice: str | None = None, status: int = 200, submission: str | None = None) -> Response:
        cookie, new_cookie = browser_cookie()
        submission = submission or tokens.new_submission()
        limits = {s.name: _limit(s, config.max_description_chars) for s in FIELDS}
        notice_text = t(lang)["notices"][notice].format(number=config.hotline_number) if notice else None
        resp = page("webform/form.html", lang, status, values=values or {}, errors=errors or {},
                    notice=notice_text, csrf_token=tokens.csrf(cookie, submission, now_ts()),
                    submission_token=submission, limits=limits, states=US_STATES)
        if new_cookie:
            set_cookie(resp, cookie)
        return resp

    def form_values() -> dict[str, Any]:
        # What the reporter typed, to show again: never lose a tip to a refusal.
        values: dict[str, Any] = {s.name: request.form.get(s.name, "") for s in FIELDS if s.kind != "bool"}
        values["contact_consent"] = bool(request.form.get("contact_consent"))
        return values

    def form_language() -> str:
        lang = (request.form.get("lang") or "").strip().lower()
        return lang if lang in LANGUAGES else negotiated_language()

    def to_confirmation(reference: str, lang: str, danger: bool) -> Response:
        code = tokens.confirmation(reference, lang, danger, now_ts())
        return redirect(url_for("webform.tip_confirmation", code=code), code=303)

    def too_large(lang: str, api: bool) -> Response:
        if api:
            return api_errors(413, {"body": t(lang)["api"]["too_large"].format(n=config.max_request_bytes)})
        return page("webform/message.html", lang, 413, title=t(lang)["too_large_title"],
                    message=t(lang)["too_large"].format(number=config.hotline_number), back=True)

    def api_errors(status: int, errors: Mapping[str, str]) -> Response:
        resp = jsonify(errors=dict(errors))
        resp.status_code = status
        return resp

    def api_language() -> str:
        return request.accept_languages.best_match(LANGUAGES, default=config.default_language) or \
            config.default_language

    def body_too_big() -> bool:
        return request.content_length is not None and request.content_length > config.max_request_bytes

    @bp.before_request
    def _limit_body() -> None:
        # Also covers chunked bodies without Content-Length: reading past the limit raises 413.
        request.max_content_length = config.max_request_bytes

    @bp.after_request
    def _security_headers(resp: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            resp.headers[name] = value
        return resp

    @bp.get("/tip")
    def tip_form() -> Response:
        return form_page(negotiated_language())

    @bp.post("/tip")
    @submission_limit
    def tip_submit() -> Response:
        if body_too_big():
            return too_large(negotiated_language(), api=False)
        lang = form_language()
        submission = request.form.get("submission_token", "")
        submission_ok = tokens.submission_ok(submission)
        cookie = request.cookies.get(config.cookie_name)
        if not (submission_ok and tokens.csrf_ok(request.form.get("csrf_token"), cookie, submission, now_ts(),
                                                 config.form_max_age_seconds)):
            log.warning("webform: form token missing, expired or invalid; tip not taken, form shown again")
            return form_page(lang, form_values(), notice="csrf", status=400,
                             submission=submission if submission_ok else None)
        reference = tip_reference(config.secret_key, submission)
        danger = request.form.get("danger_now") == "yes"
        if request.form.get("website"):
            # A bot filled the hidden field: answer exactly as for a tip, keep nothing.
            log.info("webform: honeypot filled, submission discarded (%d since start)", next(honeypot_hits))
            return to_confirmation(reference, lang, danger)
        fields, errors = validate_tip(request.form, lang, max_description_chars=config.max_description_chars)
        if errors:
            log.info("webform: tip refused, fields to correct: %s", ",".join(sorted(errors)))
            return form_page(lang, form_values(), errors=errors, status=400, submission=submission)
        signal = build_signal(fields, lang=lang, external_id=submission, reference=reference, source="form",
                              received_at=clock(), detector=detector)
        try:
            sink.accept(signal)
        except Exception as exc:  # the database is down: keep the reporter's words on their screen
            log.error("webform: tip could not be stored (%s); form shown again", exc.__class__.__name__)
            return form_page(lang, form_values(), notice="unavailable", status=503, submission=submission)
        return to_confirmation(reference, lang, danger)

    @bp.get("/tip/confirmation/<code>")
    def tip_confirmation(code: str) -> Response:
        found = tokens.read_confirmation(code, now_ts(), config.confirmation_max_age_seconds)
        if found is None:
            lang = negotiated_language()
            return page("webform/message.html", lang, 404, title=t(lang)["expired_title"],
                        message=t(lang)["expired"].format(number=config.hotline_number), back=True)
        reference, lang, danger = found
        return page("webform/confirmation.html", lang, reference=reference, danger=danger)

    @bp.get("/tip/exit")
    def quick_exit() -> Response:
        # Quick Exit without JavaScript; with it, the page leaves by location.replace directly.
        return redirect(config.exit_url, code=303)

    @bp.post("/api/tips")
    @submission_limit
    def api_tips() -> Response:
        lang = api_language()
        if request.mimetype != "application/json":
            return api_errors(415, {"body": t(lang)["errors"]["content_type"]})
        if body_too_big():
            return too_large(lang, api=True)
        try:
            data = request.get_json(silent=True)
        except RecursionError:  # nested thousands deep: the stdlib parser gives up, and it is not a tip
            data = None
        if not isinstance(data, dict):
            return api_errors(400, {"body": t(lang)["errors"]["json"]})
        errors: dict[str, str] = {}
        if "language" in data:
            if data["language"] in LANGUAGES:
                lang = data["language"]
            else:
                errors["language"] = t(lang)["errors"]["language"]
        key = request.headers.get("Idempotency-Key")
        if key is not None and not _IDEMPOTENCY_KEY.match(key):
            errors["Idempotency-Key"] = t(lang)["errors"]["idempotency_key"]
        for name in sorted(set(data) - FIELD_NAMES - {"language"}):
            errors[str(name)[:64]] = t(lang)["errors"]["unknown_field"]
        fields, field_errors = validate_tip(data, lang, json_types=True,
                                            max_description_chars=config.max_description_chars)
        errors.update(field_errors)
        if errors:
            log.info("webform api: tip refused, fields to correct: %s", ",".join(sorted(errors)))
            return api_errors(400, errors)
        external_id = f"api-{key or secrets.token_urlsafe(18)}"
        reference = tip_reference(config.secret_key, external_id)
        signal = build_signal(fields, lang=lang, external_id=external_id, reference=reference, source="api",
                              received_at=clock(), detector=detector)
        try:
            accepted = sink.accept(signal)
        except Exception as exc:
            log.error("webform api: tip could not be stored (%s)", exc.__class__.__name__)
            return api_errors(503, {"service": t(lang)["api"]["unavailable"]})
        danger = fields.get("danger_now") == "yes"
        steps = t(lang)["api_next_steps"].format(reference=reference)
        if danger:
            steps = t(lang)["api_danger_steps"].format(number=config.hotline_number) + steps
        resp = jsonify(reference=reference, next_steps=steps, danger_now=danger, language=lang)
        resp.status_code = 201
        if not accepted.created:
            resp.headers["Idempotent-Replayed"] = "true"
        return resp

    @bp.get("/api/openapi.json")
    def openapi() -> Response:
        return jsonify(openapi_document(config))

    @bp.errorhandler(RateLimitExceeded)
    def rate_limited(exc: RateLimitExceeded) -> Response:
        log.warning("webform: submission refused by the rate limit")
        if request.path.startswith("/api/"):
            return api_errors(429, {"rate_limit": t(api_language())["api"]["rate_limited"]})
        lang = form_language()
        submission = request.form.get("submission_token", "")
        return form_page(lang, form_values(), notice="rate_limited", status=429,
                         submission=submission if tokens.submission_ok(submission) else None)

    @bp.errorhandler(RequestEntityTooLarge)
    def entity_too_large(exc: RequestEntityTooLarge) -> Response:
        api = request.path.startswith("/api/")
        return too_large(api_language() if api else negotiated_language(), api=api)

    return bp
