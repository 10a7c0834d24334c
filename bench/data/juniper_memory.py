"""A labelled retrieval set: the memory of Juniper Studio, a fictional one-person brand-design
business run by Mara, and questions she might ask, each with the items that answer it.

Items mix facts, notes, receipts and conversation turns. Queries mix exact keywords (invoice
numbers, names) with paraphrases that share few words with their answer, so that neither
keyword nor vector search alone finds everything.
"""

ITEMS = [
    # facts
    ("f01", "fact", "Riverside Bakery pays invoices net 15 by bank transfer"),
    ("f02", "fact", "Acme Outdoor's marketing lead is Dana Whitfield"),
    ("f03", "fact", "Northwind Yoga prefers phone calls over email"),
    ("f04", "fact", "Copper Kettle Café owner is Luis Ortega"),
    ("f05", "fact", "Helix Labs requires an NDA before any kickoff"),
    ("f06", "fact", "Greenleaf Dental has a budget of 4,000 euros for the rebrand"),
    ("f07", "fact", "Pinecone Press publishes children's books and needs cover illustrations"),
    ("f08", "fact", "Lumen Architects wants all files delivered as vector PDF"),
    ("f09", "fact", "Tidewater Surf School is closed from November to March"),
    ("f10", "fact", "Orchard Hill Winery's harvest festival is on September 14"),
    ("f11", "fact", "My hourly rate for new clients is 95 euros"),
    ("f12", "fact", "The studio's VAT number is DE 314 159 265"),
    ("f13", "fact", "Accountant is Priya Nair, quarterly tax filings due on the 10th"),
    ("f14", "fact", "Riverside Bakery's contact is Tom Baker, the head baker"),
    ("f15", "fact", "Acme Outdoor pays net 45 and always needs a purchase order number"),
    ("f16", "fact", "I do not take work on Fridays; Fridays are for admin"),
    ("f17", "fact", "Helix Labs invoices go to ap@helixlabs.test"),
    ("f18", "fact", "Northwind Yoga's new studio opens in Leipzig in spring"),
    ("f19", "fact", "Copper Kettle Café wants a seasonal menu redesign every quarter"),
    ("f20", "fact", "Greenleaf Dental's practice manager is Sofia Lindqvist"),
    ("f21", "fact", "The studio insurance renews every January with Hanse Mutual"),
    ("f22", "fact", "Font licenses for Freight Sans are bought per project"),
    ("f23", "fact", "Orchard Hill Winery labels are printed by Druckhaus Weber"),
    ("f24", "fact", "Pinecone Press pays a flat fee of 1,200 euros per cover"),
    # notes
    ("n01", "note", "Kickoff with Riverside Bakery: they want a warmer, hand-drawn logo and new "
                    "bread bag packaging before the summer market"),
    ("n02", "note", "Acme Outdoor call: campaign for the autumn hiking range, deadline end of "
                    "August, Dana will send the product photos"),
    ("n03", "note", "Northwind Yoga feedback: the teal colour feels too cold, try sage green"),
    ("n04", "note", "Copper Kettle Café: spring menu approved, printing 500 copies on recycled "
                    "paper"),
    ("n05", "note", "Helix Labs workshop: brand values are precision, curiosity and openness"),
    ("n06", "note", "Greenleaf Dental wants the waiting room signage to feel calm and friendly"),
    ("n07", "note", "Pinecone Press: the fox book cover needs a night-time forest scene"),
    ("n08", "note", "Lumen Architects portfolio site: 12 projects, minimal layout, lots of white "
                    "space"),
    ("n09", "note", "Tidewater Surf School asked for a sticker pack for the summer camp kids"),
    ("n10", "note", "Orchard Hill Winery: new label series for the Riesling, inspired by old "
                    "botanical drawings"),
    ("n11", "note", "Idea: offer a brand starter package for small cafés at a fixed price"),
    ("n12", "note", "Pricing review: raise day rate to 720 euros from next year"),
    ("n13", "note", "Laptop backup failed twice this week; buy a new external drive"),
    ("n14", "note", "Tax: keep all receipts for the new drawing tablet, it is deductible"),
    ("n15", "note", "Portfolio update: add the Riverside Bakery packaging and the Helix Labs "
                    "identity"),
    ("n16", "note", "Conference in Berlin on brand systems, early bird ticket ends May 2"),
    ("n17", "note", "Acme Outdoor retro: photos arrived late, next time ask for them at kickoff"),
    ("n18", "note", "Greenleaf Dental rebrand presentation went well, they chose option B with "
                    "the rounded logotype"),
    ("n19", "note", "Copper Kettle Café complained that the menu PDF was too large for email"),
    ("n20", "note", "Lumen Architects want a call every second Tuesday to review progress"),
    ("n21", "note", "Helix Labs NDA signed and returned on March 12"),
    ("n22", "note", "Pinecone Press second cover: a whale under the ice, due in six weeks"),
    ("n23", "note", "Studio plants: water the monstera on Mondays"),
    ("n24", "note", "Newsletter draft: three lessons from rebranding a dental practice"),
    # receipts
    ("r01", "receipt", "executed via webhook:crm receipt r1042 posted invoice 1042 Riverside "
                       "Bakery logo paid"),
    ("r02", "receipt", "executed via webhook:crm receipt r1043 posted invoice 1043 Acme Outdoor "
                       "campaign sent to accounts payable"),
    ("r03", "receipt", "executed via webhook:crm receipt r1044 posted invoice 1044 Copper Kettle "
                       "spring menu paid"),
    ("r04", "receipt", "executed via webhook:billing receipt r2001 posted payment reminder to "
                       "Helix Labs for invoice 1039"),
    ("r05", "receipt", "executed via notes receipt r3001 note saved kickoff Riverside Bakery"),
    ("r06", "receipt", "executed via webhook:crm receipt r1045 posted invoice 1045 Greenleaf "
                       "Dental rebrand deposit"),
    ("r07", "receipt", "executed via webhook:slack-studio receipt r4001 posted weekly status to "
                       "the Lumen Architects channel"),
    ("r08", "receipt", "executed via webhook:crm receipt r1046 posted invoice 1046 Pinecone Press "
                       "fox cover"),
    ("r09", "receipt", "failed via webhook:crm HTTP 500 invoice 1047 Orchard Hill labels, gave "
                       "up after retrying"),
    ("r10", "receipt", "executed via webhook:crm receipt r1048 posted invoice 1048 Orchard Hill "
                       "labels resent"),
    # turns
    ("t01", "turn", "remind me to send Dana the moodboard before the Acme call"),
    ("t02", "turn", "can you check whether Helix paid the overdue invoice"),
    ("t03", "turn", "I need to finish the sticker designs for the surf camp this week"),
    ("t04", "turn", "block Thursday afternoon for the winery label sketches"),
    ("t05", "turn", "draft a friendly note to Luis about the autumn menu"),
    ("t06", "turn", "what did Sofia say about the signage colours"),
    ("t07", "turn", "send the Lumen team the updated project grid"),
    ("t08", "turn", "I'm thinking of hiring a junior designer next year"),
    ("t09", "turn", "the external drive arrived, set up the backups tonight"),
    ("t10", "turn", "ask Priya if the tablet counts as equipment for taxes"),
]

QUERIES = [
    ("when does Riverside Bakery pay", ["f01"]),
    ("who is the marketing contact at Acme", ["f02"]),
    ("how does Northwind like to be contacted", ["f03"]),
    ("name of the café owner", ["f04"]),
    ("do I need a confidentiality agreement with Helix", ["f05", "n21"]),
    ("Greenleaf rebrand budget", ["f06"]),
    ("what kind of books does Pinecone publish", ["f07"]),
    ("file format for Lumen deliverables", ["f08"]),
    ("is the surf school open in winter", ["f09"]),
    ("date of the winery harvest festival", ["f10"]),
    ("my hourly rate", ["f11"]),
    ("VAT number", ["f12"]),
    ("who does my taxes", ["f13"]),
    ("contact person at the bakery", ["f14"]),
    ("Acme payment terms and PO", ["f15"]),
    ("which day do I keep free of client work", ["f16"]),
    ("where to send Helix invoices", ["f17"]),
    ("Northwind new location", ["f18"]),
    ("how often does Copper Kettle redo its menu", ["f19", "n04"]),
    ("Greenleaf practice manager", ["f20"]),
    ("studio insurance renewal", ["f21"]),
    ("Freight Sans licence", ["f22"]),
    ("who prints the wine labels", ["f23"]),
    ("what does Pinecone pay per cover", ["f24"]),
    ("bakery logo direction from the kickoff", ["n01"]),
    ("Acme autumn campaign deadline", ["n02"]),
    ("colour feedback from the yoga studio", ["n03"]),
    ("how many menus were printed", ["n04"]),
    ("Helix brand values", ["n05"]),
    ("dental waiting room signs", ["n06"]),
    ("fox book cover scene", ["n07"]),
    ("architecture portfolio website layout", ["n08"]),
    ("stickers for the kids camp", ["n09", "t03"]),
    ("Riesling label inspiration", ["n10"]),
    ("fixed price offer for small coffee shops", ["n11"]),
    ("raising my day rate", ["n12"]),
    ("backup drive problems", ["n13", "t09"]),
    ("is the drawing tablet tax deductible", ["n14", "t10"]),
    ("what to add to my portfolio", ["n15"]),
    ("Berlin conference early bird", ["n16"]),
    ("lessons from the Acme project", ["n17"]),
    ("which logo option did the dentist pick", ["n18"]),
    ("menu PDF too big", ["n19"]),
    ("how often do I meet Lumen", ["n20"]),
    ("when was the Helix NDA signed", ["n21"]),
    ("whale cover deadline", ["n22"]),
    ("watering the plants", ["n23"]),
    ("newsletter about rebranding a dental clinic", ["n24"]),
    ("invoice 1042", ["r01"]),
    ("was the Acme invoice sent", ["r02"]),
    ("Copper Kettle invoice paid", ["r03"]),
    ("reminder about the overdue Helix invoice", ["r04", "t02"]),
    ("Greenleaf deposit invoice", ["r06"]),
    ("weekly status to Lumen", ["r07", "t07"]),
    ("invoice for the fox cover", ["r08"]),
    ("the winery invoice that failed", ["r09", "r10"]),
    ("moodboard for Dana", ["t01"]),
    ("did Helix pay", ["t02", "r04"]),
    ("time blocked for label sketches", ["t04"]),
    ("note to Luis about autumn", ["t05"]),
    ("signage colours Sofia", ["t06", "n06"]),
    ("hiring help next year", ["t08"]),
    ("receipt r1048", ["r10"]),
    ("Dana product photos late", ["n17", "n02"]),
]
