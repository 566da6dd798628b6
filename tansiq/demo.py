"""`tansiq demo`: a realistic, fictional network to try Tansiq with. Safe to run twice (upserts)."""

from contextlib import contextmanager

from tansiq import config as tansiq_config
from tansiq.db import make_engine, session_scope

DEMO_PASSWORD = "tansiq-demo"  # demo only; printed by `tansiq demo` and the README

ASSOCIATIONS = [
    {"slug": "amal-safi", "name_ar": "جمعية أمل للتنمية", "name_fr": "Association Amal pour le développement",
     "city": "Safi", "address": "Quartier Biada, Safi", "phone": "+212524000001", "email": "contact@amal-safi.example",
     "services": [
         {"name": "Écoute et orientation", "category": "listening_orientation", "languages": ["ar", "fr"]},
         {"name": "Formation couture et broderie", "category": "vocational_training", "languages": ["ar"]},
         {"name": "Alphabétisation", "category": "literacy", "languages": ["ar"]},
         {"name": "Commercialisation des produits", "category": "marketing", "languages": ["ar", "fr"]},
         {"name": "Appui aux projets des femmes et des jeunes", "category": "project_support",
          "languages": ["ar", "fr"]},
     ]},
    {"slug": "wafae-marrakech", "name_ar": "جمعية وفاء للمرأة", "name_fr": "Association Wafae pour la femme",
     "city": "Marrakech", "address": "Daoudiate, Marrakech", "phone": "+212524000002",
     "email": "contact@wafae.example",
     "services": [
         {"name": "Orientation juridique", "category": "legal_orientation", "languages": ["ar", "fr"]},
         {"name": "Soutien psychologique", "category": "psychological_support", "languages": ["ar", "fr"]},
     ]},
    {"slug": "dar-noor-casablanca", "name_ar": "دار النور", "name_fr": "Dar Noor", "city": "Casablanca",
     "address": "Hay Mohammadi, Casablanca", "phone": "+212522000003", "email": "accueil@darnoor.example",
     "services": [
         {"name": "Hébergement d'urgence", "category": "shelter", "languages": ["ar", "fr"]},
         {"name": "Soins médicaux", "category": "medical_care", "languages": ["ar", "fr"]},
         {"name": "Orientation juridique", "category": "legal_orientation", "languages": ["ar", "fr", "en"]},
     ]},
    {"slug": "tifawin-agadir", "name_ar": "جمعية تيفاوين", "name_fr": "Association Tifawin", "city": "Agadir",
     "address": "Dcheira, Agadir", "phone": "+212528000004", "email": "bonjour@tifawin.example",
     "services": [
         {"name": "Formation aux métiers de l'artisanat", "category": "vocational_training", "languages": ["ar"]},
         {"name": "Salon des produits du terroir", "category": "marketing", "languages": ["ar", "fr"]},
     ]},
    {"slug": "mogador-essaouira", "name_ar": "جمعية موكادور", "name_fr": "Association Mogador", "city": "Essaouira",
     "address": "Médina, Essaouira", "phone": "+212524000005", "email": "contact@mogador.example",
     "services": [
         {"name": "Festival des artisanes", "category": "marketing", "languages": ["ar", "fr", "en"]},
         {"name": "Citoyenneté et droits humains", "category": "citizenship_training", "languages": ["ar", "fr"]},
     ]},
    {"slug": "insaf-rabat", "name_ar": "جمعية إنصاف", "name_fr": "Association Insaf", "city": "Rabat",
     "address": "Agdal, Rabat", "phone": "+212537000006", "email": "contact@insaf.example",
     "services": [
         {"name": "Orientation juridique et accompagnement", "category": "legal_orientation",
          "languages": ["ar", "fr"]},
         {"name": "Soutien psychologique", "category": "psychological_support", "languages": ["ar", "fr"]},
     ]},
]

STAFF = [
    ("s-safi-1", "amal-safi", "Fatima Zahra El Idrissi", "fatima@amal-safi.example", "ar", ["case_worker"]),
    ("s-safi-2", "amal-safi", "Hanane Benali", "hanane@amal-safi.example", "fr", ["case_worker", "coordinator"]),
    ("s-safi-3", "amal-safi", "Youssef Amrani", "youssef@amal-safi.example", "fr", ["events_manager"]),
    ("s-mrk-1", "wafae-marrakech", "Naima Ouali", "naima@wafae.example", "ar", ["case_worker"]),
    ("s-mrk-2", "wafae-marrakech", "Salma Tazi", "salma@wafae.example", "fr", ["coordinator", "admin"]),
    ("s-casa-1", "dar-noor-casablanca", "Karima Lahlou", "karima@darnoor.example", "fr", ["case_worker"]),
    ("s-casa-2", "dar-noor-casablanca", "Meryem Chraibi", "meryem@darnoor.example", "en", ["coordinator"]),
    ("s-aga-1", "tifawin-agadir", "Itto Ait Lahcen", "itto@tifawin.example", "ar", ["events_manager", "case_worker"]),
    ("s-ess-1", "mogador-essaouira", "Leila Bennani", "leila@mogador.example", "fr", ["events_manager"]),
    ("s-rbt-1", "insaf-rabat", "Amina Skalli", "amina@insaf.example", "ar", ["case_worker", "coordinator"]),
]


@contextmanager
def service_database(service):
    """The engine of `service`'s own database, disposed afterwards (services own their data)."""
    engine = make_engine(tansiq_config.load(service)["DB_URI"])
    try:
        yield engine
    finally:
        engine.dispose()


def seed_directory(progress):
    from services.directory import domain

    with service_database("directory") as engine, session_scope(engine) as session:
        for association in ASSOCIATIONS:
            progress(f"association {association['slug']} ({association['city']})")
            domain.upsert_association(session, association)
        for staff_id, slug, name, email, language, roles in STAFF:
            progress(f"staff {email}")
            domain.upsert_staff(session, {"id": staff_id, "association_slug": slug, "name": name, "email": email,
                                          "language": language, "roles": roles}, password=DEMO_PASSWORD)


def is_seeded():
    from sqlalchemy import inspect, select

    from services.directory.models import Association

    with service_database("directory") as engine:
        if not inspect(engine).has_table("associations"):
            return False
        with session_scope(engine) as session:
            return session.scalar(select(Association.slug).limit(1)) is not None


def seed_events(progress):
    from services.events import demo as events_demo
    from tansiq.envelope import utcnow

    known = {association["slug"] for association in ASSOCIATIONS}
    with service_database("events") as engine, session_scope(engine) as session:
        events_demo.seed(session, utcnow(), known, progress)


# Each step seeds one service's own database (services own their data), in dependency order.
STEPS = [("directory", seed_directory), ("events", seed_events)]


def seed(out=print):
    done = [0]

    def progress(what):
        done[0] += 1
        out(f"  [{done[0]:>3}] {what}")

    for name, step in STEPS:
        out(f"seeding {name} …")
        step(progress)
    out(f"demo network ready: {len(ASSOCIATIONS)} associations, {len(STAFF)} staff (password: {DEMO_PASSWORD})")
