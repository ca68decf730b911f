"""Word pools for synthetic Nepali company names, people and places."""

from __future__ import annotations

import random

# fmt: off
PLACE_WORDS: tuple[str, ...] = (
    "Himalayan", "Everest", "Annapurna", "Machhapuchchhre", "Kailash", "Sagarmatha", "Lumbini",
    "Janaki", "Gandaki", "Karnali", "Mahakali", "Bagmati", "Koshi", "Narayani", "Rapti", "Bheri",
    "Seti", "Sindhu", "Kanchan", "Mahalaxmi", "Shangrila", "Muktinath", "Kamana", "Garima", "Jyoti",
    "Shine", "Sanima", "Prabhu", "Siddhartha", "Global", "Citizens", "Sunrise", "Century", "Civil",
    "Kumari", "Laxmi", "Mega", "Prime", "Agricultural", "Manjushree", "Pokhara", "Kathmandu",
    "Lalitpur", "Bhaktapur", "Gorkha", "Tinau", "Miteri", "Bhargav", "Shivam", "Sarbottam",
    "Unique", "Excel", "Green", "Corporate", "Reliance", "Progressive", "Salapa", "Nerude",
    "Forward", "Samata", "Swabalamban", "Chhimek", "Deprosc", "Jeevan", "Mithila", "Suryodaya",
    "Womi", "Aarambha", "Ganapati", "Infinity", "Mahuli", "Manakamana", "Dhaulagiri", "Arun",
    "Tamor", "Dordi", "Kalika", "Likhu", "Mai", "Rasuwa", "Sanjen", "Chilime", "Barun", "Radhi",
    "Ngadi", "Api", "Panchthar", "Ridi", "Khanikhola", "Makar", "Bindhyabasini", "Ankhu", "Solu",
    "Hewa", "Mandakini", "Dolti", "Bhugol", "Tanahun", "Union", "Trishuli", "Peoples", "Madhya",
    "Joshi", "Eastern", "Western", "Crest", "Sonapur", "Yak", "Soaltee", "Taragaon", "Chandragiri",
    "Oriental", "Bandipur", "Kavre", "Nilgiri", "Ganesh", "Langtang", "Rolwaling", "Tilicho",
    "Phewa", "Rara", "Begnas", "Shuvam", "Mount", "Kalinchowk", "Swet-Ganga", "Upakar", "Buddha",
    "Saptakoshi", "Mero", "Sahara", "Nadep", "Samriddhi", "Sindhujwala", "Vijaya", "Jalpa",
    "Aviyan", "Unnati", "Dhanalaxmi", "Manushi",
)
# fmt: on

SECTOR_NAME_TEMPLATES: dict[str, tuple[str, ...]] = {
    "Commercial Banks": ("{} Bank Limited", "{} Bank Ltd.", "{} Bank Nepal Limited"),
    "Development Banks": ("{} Development Bank Limited", "{} Bikas Bank Ltd.", "{} Bikas Bank Limited"),
    "Finance": ("{} Finance Limited", "{} Finance Company Ltd.", "{} Merchant Banking & Finance Ltd."),
    "Microfinance": (
        "{} Laghubitta Bittiya Sanstha Limited",
        "{} Microfinance Bittiya Sanstha Ltd.",
        "{} Laghubitta Bittiya Sanstha Ltd",
    ),
    "Hydro Power": (
        "{} Hydropower Limited",
        "{} Khola Jalvidhyut Company Ltd",
        "{} Hydro Power Company Limited",
        "{} Urja Limited",
        "{} Jalvidhyut Company Limited",
    ),
    "Life Insurance": ("{} Life Insurance Company Limited", "{} Life Insurance Limited"),
    "Non Life Insurance": ("{} General Insurance Limited", "{} Insurance Company Ltd.", "{} Insurance Limited"),
    "Manufacturing And Processing": (
        "{} Cement Industries Limited",
        "{} Sugar Mills Ltd.",
        "{} Biscuit Udhyog Limited",
        "{} Textile Industries Limited",
        "{} Distillery Limited",
    ),
    "Hotels And Tourism": ("{} Hotels Limited", "{} Resort Limited", "{} Cable Car and Tourism Limited"),
    "Investment": ("{} Investment Company Limited", "{} Capital Limited", "{} Infrastructure Fund Ltd."),
    "Tradings": ("{} Trading Corporation Limited", "{} Traders Ltd."),
    "Others": ("{} Airlines Limited", "{} Telecom Limited", "{} Warehousing Company Limited"),
    "Mutual Fund": ("{} Growth Fund", "{} Equity Fund", "{} Mutual Fund"),
}

FUND_NAME_TEMPLATES: tuple[str, ...] = (
    "{} Growth Fund",
    "{} Equity Fund",
    "{} Investment Growth Scheme {}",
    "{} Mutual Fund {}",
    "{} Sambridhi Kosh",
)

# fmt: off
FIRST_NAMES: tuple[str, ...] = (
    "Ram", "Sita", "Hari", "Gita", "Krishna", "Laxmi", "Bishnu", "Sarita", "Rajesh", "Anita",
    "Suman", "Prakash", "Sunita", "Dipak", "Kamala", "Bikash", "Sabina", "Niraj", "Pooja", "Saroj",
    "Binod",
)
# fmt: on
# fmt: off
SURNAMES: tuple[str, ...] = (
    "Shrestha", "Sharma", "Adhikari", "Thapa", "Gurung", "Tamang", "Karki", "Maharjan", "Poudel",
    "Khadka", "Bhattarai", "Rai", "Limbu", "Joshi", "Ghimire", "Pandey", "Singh", "Yadav", "Magar",
)
# fmt: on
# fmt: off
TOWNS: tuple[str, ...] = (
    "Kathmandu", "Kathmandu", "Kathmandu", "Lalitpur", "Bhaktapur", "Pokhara", "Biratnagar",
    "Birgunj", "Butwal", "Bharatpur", "Dharan", "Hetauda", "Nepalgunj", "Janakpur", "Itahari",
    "Dhangadhi",
)
# fmt: on
# fmt: off
STREETS: tuple[str, ...] = (
    "Durbarmarg", "Naxal", "Kamaladi", "Thapathali", "New Baneshwor", "Tripureshwor", "Lazimpat",
    "Putalisadak", "Hattisar", "Jawalakhel", "Pulchowk", "Kupondole", "Sinamangal", "Teku",
    "Lakeside", "Main Road", "Traffic Chowk", "Bhatbhateni", "Babarmahal", "Dillibazar",
)
# fmt: on

# fmt: off
DOMAIN_SUFFIXES: tuple[str, ...] = (
    ".com.np", ".com.np", ".com", ".org.np",
)
# fmt: on
# fmt: off
WEBSITE_PREFIXES: tuple[str, ...] = (
    "www.", "www.", "http://www.", "https://www.", "",
)
# fmt: on


def place(rng: random.Random) -> str:
    return rng.choice(PLACE_WORDS)


def company_name(rng: random.Random, sector: str, place_word: str | None = None) -> str:
    template = rng.choice(SECTOR_NAME_TEMPLATES[sector])
    return template.format(place_word or place(rng))


def fund_name(rng: random.Random, place_word: str) -> str:
    template = rng.choice(FUND_NAME_TEMPLATES)
    return template.format(place_word, rng.randint(1, 3))


def person_name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}"


def domain_for(rng: random.Random, name: str) -> str:
    stem = "".join(ch for ch in name.split()[0].lower() if ch.isalpha())
    return stem + rng.choice(DOMAIN_SUFFIXES)
